"""How the Sparkle client (``lambdas.adapters.sparkle``) waits, retries and names its requests: plain values, so
the stacks read them (the configuration's defaults, the gateway alarms) without loading the client or ``requests``."""

from collections.abc import Iterator
from dataclasses import dataclass

# How long the client waits by default (the stacks' GatewaySettings start from these): a card charge answers in
# a second or two, and two attempts of connect + read must fit a request's deadline twice over (a resumed retry).
DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_READ_TIMEOUT = 4.0
CHARGES, REFUNDS = "/v1/charges", "/v1/refunds"
# A charge's actions: the path with ``{id}`` in place of the charge's id.
CHARGE_CAPTURE, CHARGE_VOID = "/v1/charges/{id}/capture", "/v1/charges/{id}/void"
# A settlement's list, and one settlement's lines (the path with ``{id}`` in place of the settlement's id).
SETTLEMENTS, SETTLEMENT_LINES = "/v1/settlements", "/v1/settlements/{id}/lines"
# Every request the client makes, as the gateway latency metric names it (method and path template, never an id
# or a reference).
REQUESTS = (
    *(f"{method} {path}" for path in (CHARGES, REFUNDS) for method in ("POST", "GET")),
    *(f"POST {path}" for path in (CHARGE_CAPTURE, CHARGE_VOID)),
    *(f"GET {path}" for path in (SETTLEMENTS, SETTLEMENT_LINES)),
)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 2
    backoff_seconds: float = 0.2  # doubled after each attempt

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield self.backoff_seconds * 2**attempt


DEFAULT_RETRY = RetryPolicy()
