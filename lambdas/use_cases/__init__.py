"""The use cases, one module per route family, written against ``lambdas.ports``.

Every use case takes the ``Dependencies`` (the composition root builds them
once per container) and returns an ``Answer``; client errors are raised as the
domain errors the edge maps to the contract."""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic

from lambdas.domain.errors import GatewayFailed
from lambdas.domain.rules import RuleSet
from lambdas.gateway import Gateway, GatewayError, GatewayOutcomeUnknown
from lambdas.ports import (
    Answer,
    CheckpointArchive,
    Contended,
    IdempotencyStore,
    LedgerStore,
    LostRace,
    Signer,
    UoW,
    Vault,
    VelocityCounter,
)
from lambdas.presenters import error_body


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Dependencies(Generic[UoW]):
    """The ports a use case needs; the stores share one kind of unit of work."""

    store: LedgerStore[UoW]
    idempotency: IdempotencyStore[UoW]
    velocity: VelocityCounter[UoW]
    vault: Vault
    gateway: Gateway
    rules: RuleSet
    signer: Signer
    archive: CheckpointArchive  # the merchant's checkpoints in write-once storage
    clock: Callable[[], datetime] = utc_now


def request_digest(fields: dict[str, Any]) -> str:
    """What is kept to recognise a request's body. Callers pass card numbers only as their keyed
    fingerprint and never a CVC, so nothing here can be computed from card data without the KMS key."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def store_answer(deps: Dependencies[UoW], key: str, answer: Answer) -> None:
    """Keep ``answer`` for replays of ``key``. When that cannot be written (the key was completed meanwhile, or
    its item stayed busy), the key is freed instead: a retry finds the object settled and answers the same."""
    uow = deps.store.unit_of_work()
    deps.idempotency.complete(uow, key, answer)
    try:
        uow.commit()
    except (LostRace, Contended):
        deps.idempotency.release(key)  # nothing when another request completed it


def gateway_failed(
    deps: Dependencies[UoW], key: str | None, error: GatewayError, payment_id: str, refund_id: str | None = None
) -> GatewayFailed:
    """The error to raise when the gateway failed: the key is released so a retry settles the same object."""
    if key is not None:
        deps.idempotency.release(key)
    return GatewayFailed(payment_id, timed_out=isinstance(error, GatewayOutcomeUnknown), refund_id=refund_id)


def given_up_answer(request_id: str, payment_id: str, refund_id: str | None = None) -> Answer:
    """The answer for a payment (or refund) that reconciliation gave up since the gateway never made it: final, so
    kept for replays, and a ``402`` (the request was valid and failed, as a decline does), unlike the ``502`` of a
    gateway that may still answer. A new key starts a new one."""
    what, code = ("refund", "refund_failed") if refund_id else ("payment", "payment_failed")
    message = f"The gateway never made this {what}, so it failed for good; to try again, use a new Idempotency-Key."
    body = error_body("gateway_error", code, message, request_id, payment_id=payment_id, refund_id=refund_id)
    return Answer(402, body)
