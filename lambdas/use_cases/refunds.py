"""POST /payments/{id}/refunds: give back part or all of a captured payment.

The amount is reserved on the payment (a condition on what is left) together
with the pending refund and the key's claim, before the gateway is asked, so
concurrent refunds never ask the gateway for more than was captured. A lost
answer leaves the refund pending: a retry with the same key, or
reconciliation, settles it by looking it up by reference."""

import contextlib

from lambdas.domain.errors import InvalidRequest
from lambdas.domain.events import refund_event
from lambdas.domain.ids import new_id
from lambdas.domain.money import check_amount
from lambdas.domain.payments import Payment, Refund, RefundStatus
from lambdas.gateway import (
    REFUND_STATUSES,
    GatewayError,
    GatewayInvalidAnswer,
    GatewayRefund,
    GatewayRejected,
)
from lambdas.ports import Contended, LostRace, UoW
from lambdas.use_cases import Dependencies, gateway_failed, recorded, request_digest, store_answer
from lambdas.use_cases.idempotency import Begun, Fresh, Keyed, Replay, Resume
from lambdas.use_cases.reads import find_payment

# A reservation is tried again only when another writer changed the payment under it (another refund reserved,
# completed or cancelled), so every lost race is someone else's progress: the bound only stops a runaway.
RESERVE_ATTEMPTS = 100

# A refund request's idempotency key, and the answer the edge sends for the refund it ends with (succeeded, or failed
# when it was given up).
KeyedRefund = Keyed[Refund]


def refund(deps: Dependencies[UoW], payment_id: str, amount: int | None, call: KeyedRefund) -> Refund | Replay:
    """Refund ``amount`` (None: all that is left) of the payment."""
    if amount is not None:
        check_amount(amount)
    payment = find_payment(deps, payment_id, with_metadata=False)
    digest = request_digest({"payment_id": payment.id, "amount": amount})
    begun, refund, payment = _reserve(deps, payment, amount, call.key, digest)
    match begun:
        case Fresh() if refund is not None:
            return _send(deps, payment, refund, call)
        case Replay():
            return begun
        case Resume(resource_id=refund_id):
            return _resume(deps, payment, refund_id, call)
    raise AssertionError(begun)


def _reserve(
    deps: Dependencies[UoW], payment: Payment, amount: int | None, key: str, digest: str
) -> tuple[Begun, Refund | None, Payment]:
    """Hold the amount with the key's claim; the refund is None when the key was used before. With it, the payment
    as this reservation left it (else as last read)."""
    for _ in range(RESERVE_ATTEMPTS):
        try:
            reserved, refund = payment.reserve_refund(new_id("re"), amount, deps.clock(), key)
        except InvalidRequest:
            earlier = deps.idempotency.resume_or_replay(key, digest)  # nothing left, unless this key took it
            if earlier is None:
                raise
            return earlier, None, payment
        uow = deps.store.unit_of_work()
        deps.store.reserve_refund(uow, payment, refund)
        try:
            begun = deps.idempotency.begin(uow, key, digest, refund.id)
            return begun, refund, reserved if isinstance(begun, Fresh) else payment
        except LostRace as race:
            if race.conflicts.get("payment") is None:
                raise
            payment = race.conflicts["payment"]  # another refund moved it: check again against what is left
        except Contended:  # other transactions kept the payment busy (concurrent refunds): read it, try again
            payment = find_payment(deps, payment.id, with_metadata=False)
    raise RuntimeError(f"could not reserve a refund of {payment.id} in {RESERVE_ATTEMPTS} attempts")


def _send(deps: Dependencies[UoW], payment: Payment, refund: Refund, call: KeyedRefund) -> Refund:
    try:
        made = deps.gateway.refund(
            payment.charge_id or "", refund.amount, reference=refund.id, idempotency_key=refund.id
        )
    except GatewayRejected as rejected:
        if not rejected.amount_refused:
            raise gateway_failed(deps, call, rejected, payment.id, refund.id) from None
        try:
            _cancel(deps, payment, refund)
        except Contended:  # still reserved and pending: a retry or reconciliation finds no refund, and cancels it
            raise gateway_failed(deps, call, rejected, payment.id, refund.id) from None
        deps.idempotency.forget(call.key)
        raise InvalidRequest("The gateway refused the refund amount.", "amount", "amount_too_large") from None
    except GatewayError as error:
        raise gateway_failed(deps, call, error, payment.id, refund.id) from None
    except Exception:  # the refund stays pending and reserved; a retry or reconciliation settles it
        deps.idempotency.release(call.key)
        raise
    return _record_answer(deps, payment, refund, made, call)


def _record_answer(
    deps: Dependencies[UoW], payment: Payment, refund: Refund, made: GatewayRefund, call: KeyedRefund
) -> Refund:
    """Record a refund the gateway answered with (``recorded``: or leave it pending)."""
    return recorded(
        deps, call, lambda: book(deps, payment, refund, check_made(payment, refund, made), call), payment.id, refund.id
    )


def _resume(deps: Dependencies[UoW], payment: Payment, refund_id: str, call: KeyedRefund) -> Refund:
    """A retry after a 5xx (or an abandoned attempt): settle that refund, never send a second."""
    refund = deps.store.get_refund(payment.id, refund_id)
    if refund is None:
        raise RuntimeError(f"the key's refund {refund_id} is missing")
    if refund.status is not RefundStatus.PENDING:
        return _settled_elsewhere(deps, refund, call)
    try:
        made = deps.gateway.find_refund(refund.id)
    except GatewayError as error:
        raise gateway_failed(deps, call, error, payment.id, refund.id) from None
    if made is None:  # it never reached the gateway; same gateway key regardless
        return _send(deps, payment, refund, call)
    return _record_answer(deps, payment, refund, made, call)


def check_made(payment: Payment, refund: Refund, made: GatewayRefund) -> GatewayRefund:
    """A gateway refund that can be booked as ``refund`` of ``payment``, or ``GatewayInvalidAnswer``."""
    expected = (refund.id, refund.amount, payment.charge_id, *REFUND_STATUSES)
    if (made.reference, made.amount, made.charge_id, made.status) != expected:
        raise GatewayInvalidAnswer(f"the gateway's refund {made.id} does not match {refund.id}")
    return made


def book(
    deps: Dependencies[UoW], payment: Payment, refund: Refund, made: GatewayRefund, call: KeyedRefund | None
) -> Refund:
    """Record a refund the gateway made: the refund, its reversing entries, its event and the reply, at once."""
    now = deps.clock()
    refunded, done, entries = payment.complete_refund(refund, made.id, now)
    uow = deps.store.unit_of_work()
    deps.store.complete_refund(uow, done, entries)
    deps.store.add_event(uow, refund_event(refunded, done, now))
    if call is not None:
        deps.idempotency.complete(uow, call.key, call.answer(done))
    try:
        uow.commit()
    except LostRace as race:
        current = race.conflicts.get("refund")
        if current is None:
            raise
        return _settled_elsewhere(deps, current, call)  # reconciliation settled it first
    return done


def _cancel(deps: Dependencies[UoW], payment: Payment, refund: Refund) -> None:
    uow = deps.store.unit_of_work()
    add_failure(deps, uow, payment, refund)
    with contextlib.suppress(LostRace):  # settled elsewhere meanwhile: its reservation was dealt with there
        uow.commit()


def add_failure(deps: Dependencies[UoW], uow: UoW, payment: Payment, refund: Refund) -> None:
    """Add to ``uow`` the parts moving the pending refund to failed, its reservation released, with its event."""
    released, failed = payment.cancel_refund(refund)
    deps.store.cancel_refund(uow, failed)
    deps.store.add_event(uow, refund_event(released, failed, deps.clock()))


def _settled_elsewhere(deps: Dependencies[UoW], refund: Refund, call: KeyedRefund | None) -> Refund:
    """A refund settled elsewhere (succeeded, or failed when it was given up), its answer stored for replays."""
    if call is not None:
        store_answer(deps, call, refund)
    return refund
