"""The use cases, one module per route family, written against ``lambdas.ports``.

Every use case takes the ``Dependencies`` (the composition root builds them
once per container) and returns its result: domain objects, or an idempotent
request's ``Replay``. The edge turns a result into the contract's answer
(``lambdas.presenters``); an idempotent request brings that presenter along
(``Keyed``), so that the answer stored for replays is the one sent. Client
errors are raised as the domain errors the edge maps to the contract."""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from lambdas.domain.errors import GatewayFailed, InvalidRequest
from lambdas.domain.rules import RuleSet
from lambdas.domain.webhooks import PUBLIC_HTTPS, UrlPolicy
from lambdas.gateway import Gateway, GatewayError, GatewayOutcomeUnknown
from lambdas.logs import logger
from lambdas.ports import CheckpointArchive, Contended, LedgerStore, LostRace, Signer, UoW, Vault, VelocityCounter
from lambdas.use_cases.idempotency import IdempotencyKeys, Keyed, Result


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Dependencies(Generic[UoW]):
    """The ports a use case needs; the stores share one kind of unit of work."""

    store: LedgerStore[UoW]
    idempotency: IdempotencyKeys[UoW]
    velocity: VelocityCounter[UoW]
    vault: Vault
    gateway: Gateway
    rules: RuleSet
    signer: Signer
    archive: CheckpointArchive  # the merchant's checkpoints in write-once storage
    clock: Callable[[], datetime] = utc_now
    webhook_urls: UrlPolicy = PUBLIC_HTTPS  # which URLs a webhook endpoint may have (loopback http: `make local`)


def request_digest(fields: dict[str, Any]) -> str:
    """What is kept to recognise a request's body. Callers pass card numbers only as their keyed
    fingerprint and never a CVC, so nothing here can be computed from card data without the KMS key."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def store_answer(deps: Dependencies[UoW], call: Keyed[Result], result: Result) -> None:
    """Keep the answer for ``result`` for replays of the call's key. When that cannot be written (the key was
    completed meanwhile, or its item stayed busy), the key is freed instead: a retry finds the object settled and
    answers the same."""
    uow = deps.store.unit_of_work()
    deps.idempotency.complete(uow, call.key, call.answer(result))
    try:
        uow.commit()
    except (LostRace, Contended):
        deps.idempotency.release(call.key)  # nothing when another request completed it


def gateway_failed(
    deps: Dependencies[UoW],
    call: Keyed[Any] | None,
    error: GatewayError,
    payment_id: str,
    refund_id: str | None = None,
) -> GatewayFailed:
    """The error to raise when the gateway failed: the key is released so a retry settles the same object."""
    if call is not None:
        deps.idempotency.release(call.key)
    return GatewayFailed(payment_id, timed_out=isinstance(error, GatewayOutcomeUnknown), refund_id=refund_id)


Booked = TypeVar("Booked")


def recorded(
    deps: Dependencies[UoW],
    call: Keyed[Any],
    booking: Callable[[], Booked],
    payment_id: str,
    refund_id: str | None = None,
) -> Booked:
    """What ``booking`` books of a gateway's answer. Whatever keeps it from being booked (a write that other writers
    kept busy, throttling, a lost answer from DynamoDB, an answer that cannot be booked) leaves the object pending,
    as a lost gateway answer does: a 504 naming it, its key free, never a 500 after money may have moved."""
    try:
        return booking()
    except InvalidRequest:  # booked, and the request refused (a capture of what expired meanwhile)
        raise
    except GatewayError as error:
        raise gateway_failed(deps, call, error, payment_id, refund_id) from None
    except Exception:
        logger.exception(
            "the gateway's answer could not be recorded", extra={"payment_id": payment_id, "refund_id": refund_id}
        )
        unrecorded = GatewayOutcomeUnknown(f"the answer for {refund_id or payment_id} could not be recorded")
        raise gateway_failed(deps, call, unrecorded, payment_id, refund_id) from None
