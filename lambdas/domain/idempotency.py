"""The idempotency protocol's rules: a key's record, its states and times, and what a request that finds its key
taken is told. ``lambdas.use_cases.idempotency`` runs the protocol over the records a store keeps."""

import hashlib
from dataclasses import dataclass
from enum import Enum

from lambdas.domain.errors import IdempotencyConflict

RETENTION_SECONDS = 24 * 3600  # a key is kept at least this long; an expired one starts a new request at once
IN_FLIGHT_SECONDS = 60  # longer than a function may run; a claim older than this was abandoned


class State(str, Enum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    RETRYABLE = "retryable"  # released after a 5xx: a retry resumes the record's object


@dataclass(frozen=True)
class Record:
    """A key's record. ``response_body`` is the answer's body as its store keeps it (the store opens it)."""

    id: str
    state: State
    digest: str
    resource_id: str
    in_flight_until: int
    expiration: int
    response_status: int | None = None
    response_body: str | None = None

    def abandoned(self, now: float) -> bool:
        return self.state is State.IN_PROGRESS and now > self.in_flight_until


def record_id(merchant: str, route: str, key: str) -> str:
    """Keys are scoped to the merchant and the route."""
    return hashlib.sha256(f"{merchant}\n{route}\n{key}".encode()).hexdigest()


def key_in_use() -> IdempotencyConflict:
    return IdempotencyConflict(
        409, "idempotency_key_in_use", "A request with this Idempotency-Key is still in progress."
    )


def body_differs() -> IdempotencyConflict:
    return IdempotencyConflict(
        422, "idempotency_key_reused", "This Idempotency-Key was used with a different request body."
    )


def must_reclaim(record: Record, digest: str, now: float) -> bool:
    """What a request with ``digest`` does with the key ``record`` holds: False to replay its answer, True to take
    the record over and resume its object; raises the 422 (another body) and the 409 (still in flight)."""
    if record.digest != digest:
        raise body_differs()
    if record.state is State.COMPLETED:
        return False
    if record.state is State.IN_PROGRESS and not record.abandoned(now):
        raise key_in_use()
    return True
