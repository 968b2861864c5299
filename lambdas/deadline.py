"""The time a request has left, so that every request is answered before the
function's timeout (and so before API Gateway's 29 s).

The edge starts the clock from the Lambda context's remaining time, less
``WRITE_RESERVE_SECONDS`` for recording the outcome after the gateway gives up;
the gateway client never starts or waits on an attempt past it."""

import math
import time
from collections.abc import Callable
from contextvars import ContextVar

# Kept back from the function's remaining time: the writes that record a 504 and the response itself.
WRITE_RESERVE_SECONDS = 2.0
# Kept back from the function's timeout when writes stop waiting for their turn: giving up (releasing the key) and
# answering take at most this long.
GIVE_UP_SECONDS = 1.0

_deadline: ContextVar[float] = ContextVar("deadline", default=math.inf)


def start(remaining_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
    """This request must be answered within ``remaining_seconds`` (from the Lambda context)."""
    _deadline.set(clock() + remaining_seconds - WRITE_RESERVE_SECONDS)


def start_from(context: object) -> None:
    """Start from a Lambda context's remaining time; without one (a test, a script) there is no deadline."""
    remaining_millis = getattr(context, "get_remaining_time_in_millis", None)
    start(remaining_millis() / 1000 if callable(remaining_millis) else math.inf)


def remaining(clock: Callable[[], float] = time.monotonic) -> float:
    """Seconds left for outside calls (``math.inf`` outside a request)."""
    return _deadline.get() - clock()


def may_wait(seconds: float, clock: Callable[[], float] = time.monotonic) -> bool:
    """Whether a write may wait ``seconds`` before trying again and still give up and answer before the function's
    timeout: writes may use the reserve the gateway calls leave them, but not the last ``GIVE_UP_SECONDS``."""
    return remaining(clock) + WRITE_RESERVE_SECONDS - seconds >= GIVE_UP_SECONDS
