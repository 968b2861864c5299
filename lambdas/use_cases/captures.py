"""POST /payments/{id}/capture and POST /payments/{id}/cancel: finish an authorisation, exactly once.

The capture (or cancel) is claimed on the payment, together with the key's claim, by a conditional write before the
gateway is asked: of a capture and a cancel racing on one payment exactly one is claimed, and the other is refused.
A lost answer leaves the claim in place: a retry with the same key, or reconciliation, looks the charge up and books
what the gateway did, or asks again with the same gateway key (so nothing is ever captured twice). A capture the
gateway refuses because the authorisation expired there cancels the payment, and is refused."""

from datetime import datetime

from lambdas.domain.errors import InvalidRequest
from lambdas.domain.events import payment_event
from lambdas.domain.money import check_amount
from lambdas.domain.payments import Action, ActionKind, CancellationReason, Entry, Payment, Status
from lambdas.gateway import Charge, GatewayError, GatewayInvalidAnswer, GatewayRejected
from lambdas.ports import LostRace, UoW
from lambdas.use_cases import Dependencies, gateway_failed, recorded, request_digest, store_answer
from lambdas.use_cases.idempotency import Begun, Fresh, Keyed, Replay, Resume
from lambdas.use_cases.reads import find_payment

# A capture or cancel request's idempotency key, and the answer the edge sends for the payment it ends with.
KeyedAction = Keyed[Payment]

FINISHED = {"succeeded": Status.SUCCEEDED, "voided": Status.CANCELED, "expired": Status.CANCELED}


def capture(deps: Dependencies[UoW], payment_id: str, amount: int | None, call: KeyedAction) -> Payment | Replay:
    """Capture ``amount`` (None: all of it) of an authorisation; the rest is released at the gateway."""
    if amount is not None:
        check_amount(amount)
    payment = find_payment(deps, payment_id, to_book=True)
    action = Action(
        ActionKind.CAPTURE, deps.clock(), amount=payment.amount if amount is None else amount, idempotency_id=call.key
    )
    return _act(deps, payment, action, {"amount": amount}, call)


def cancel(deps: Dependencies[UoW], payment_id: str, call: KeyedAction) -> Payment | Replay:
    payment = find_payment(deps, payment_id, to_book=True)
    action = Action(
        ActionKind.CANCEL, deps.clock(), reason=CancellationReason.REQUESTED_BY_CUSTOMER, idempotency_id=call.key
    )
    return _act(deps, payment, action, {}, call)


def expire(deps: Dependencies[UoW], payment: Payment) -> bool:
    """Cancel an authorisation past ``capture_before`` and void it at the gateway (reconciliation); False when it is
    not one to expire (not yet, or captured, cancelled or claimed meanwhile)."""
    now = deps.clock()
    if payment.status is not Status.REQUIRES_CAPTURE or payment.action or not _expired(payment, now):
        return False
    action = Action(ActionKind.CANCEL, now, reason=CancellationReason.EXPIRED)
    claimed = payment.claim(action)
    uow = deps.store.unit_of_work()
    deps.store.claim_action(uow, payment, action)
    try:
        uow.commit()
    except LostRace:
        return False
    book(deps, claimed, _ask_gateway(deps, claimed), None)
    return True


def _expired(payment: Payment, now: datetime) -> bool:
    return payment.capture_before is not None and payment.capture_before <= now


def settle_claimed(deps: Dependencies[UoW], payment: Payment, ask_again_before: datetime) -> bool:
    """Book what the gateway did with an authorisation's claimed action (reconciliation); when it shows the action
    not done and it was claimed before ``ask_again_before``, ask again with the same gateway key. False: not yet."""
    charge = _looked_up(deps, payment)
    if charge.status == "authorized":
        if payment.action is None or payment.action.started_at > ask_again_before:
            return False
        charge = _ask_gateway(deps, payment)
    book(deps, payment, charge, None)
    return True


def _act(
    deps: Dependencies[UoW], payment: Payment, action: Action, fields: dict[str, int | None], call: KeyedAction
) -> Payment | Replay:
    digest = request_digest({"payment_id": payment.id, "action": action.kind.value, **fields})
    begun = _claim(deps, payment, action, call.key, digest)
    match begun:
        case Fresh():
            return _send(deps, payment.claim(action), call)
        case Replay():
            return begun
        case Resume():
            return _resume(deps, payment.id, action.kind, call)
    raise AssertionError(begun)


def _claim(deps: Dependencies[UoW], payment: Payment, action: Action, key: str, digest: str) -> Begun:
    """Claim the action with the key's claim; a payment that cannot take it is refused, unless this key claimed it."""
    try:
        payment.claim(action)
    except InvalidRequest:
        earlier = deps.idempotency.resume_or_replay(key, digest)
        if earlier is None:
            raise
        return earlier
    uow = deps.store.unit_of_work()
    deps.store.claim_action(uow, payment, action)
    try:
        return deps.idempotency.begin(uow, key, digest, payment.id)
    except LostRace as race:
        current = race.conflicts.get("payment")
        if current is None:
            raise
        current.claim(action)  # another request claimed or settled it first: the refusal says which
        raise


def _send(deps: Dependencies[UoW], payment: Payment, call: KeyedAction) -> Payment:
    """Ask the gateway for the claimed action and book its answer. Whatever fails here leaves the claim and frees
    the key: a retry, or reconciliation, settles this action, never a second."""
    try:
        charge = _ask_gateway(deps, payment)
    except InvalidRequest:  # refused by the gateway, the claim released
        deps.idempotency.forget(call.key)
        raise
    except GatewayError as error:
        raise gateway_failed(deps, call, error, payment.id) from None
    except Exception:
        deps.idempotency.release(call.key)
        raise
    return _record(deps, payment, charge, call)


def _ask_gateway(deps: Dependencies[UoW], payment: Payment) -> Charge:
    """The charge after asking for the claimed action; one the gateway refuses is looked up (it says why)."""
    action = payment.action
    if action is None or payment.charge_id is None:
        raise AssertionError(f"{payment.id} has no claimed action on a charge")
    key = action.gateway_key(payment.id)
    try:
        if action.kind is ActionKind.CAPTURE:
            return deps.gateway.capture(payment.charge_id, action.amount, payment.id, idempotency_key=key)
        return deps.gateway.void(payment.charge_id, payment.id, idempotency_key=key)
    except GatewayRejected:
        charge = _looked_up(deps, payment)
        if charge.status in FINISHED:
            return charge
        _release(deps, payment)
        raise InvalidRequest(
            f"The gateway refused to {action.kind.value} payment {payment.id}.", None, action.kind.refusal
        ) from None


def _release(deps: Dependencies[UoW], payment: Payment) -> None:
    """Give up a claim the gateway refused while the authorisation stands: nothing happened, and it may be captured
    or cancelled again."""
    uow = deps.store.unit_of_work()
    deps.store.release_action(uow, payment)
    uow.commit()


def _looked_up(deps: Dependencies[UoW], payment: Payment) -> Charge:
    charge = deps.gateway.find_charge(payment.id)
    if charge is None or charge.id != payment.charge_id:
        raise GatewayInvalidAnswer(f"the gateway has no charge {payment.charge_id} for {payment.id}")
    return charge


def _record(deps: Dependencies[UoW], payment: Payment, charge: Charge, call: KeyedAction) -> Payment:
    return recorded(deps, call, lambda: book(deps, payment, charge, call), payment.id)


def _resume(deps: Dependencies[UoW], payment_id: str, kind: ActionKind, call: KeyedAction) -> Payment:
    """A retry after a 5xx: settle the action this key claimed, never claim a second."""
    payment = find_payment(deps, payment_id, to_book=True)
    if payment.action is None:
        return _answer(deps, payment, kind, call)
    try:
        charge = _looked_up(deps, payment)
    except GatewayError as error:
        raise gateway_failed(deps, call, error, payment.id) from None
    if charge.status == "authorized":
        return _send(deps, payment, call)  # same gateway key: never sent twice
    return _record(deps, payment, charge, call)


def book(deps: Dependencies[UoW], payment: Payment, charge: Charge, call: KeyedAction | None) -> Payment:
    """Record what the gateway did with the claimed action: the payment's new state, its entries, its event and the
    reply, at once. A request whose action the gateway did not do (a capture of an expired authorisation) is
    refused."""
    now = deps.clock()
    after, entries = _finished(payment, charge, now)
    action = payment.action
    uow = deps.store.unit_of_work()
    deps.store.settle_action(uow, payment, after, entries)
    deps.store.add_event(uow, payment_event(after, now))
    done = action is not None and _did(action.kind, after)
    if call is not None and done:
        deps.idempotency.complete(uow, call.key, call.answer(after))
    try:
        uow.commit()
    except LostRace as race:
        if "payment" not in race.conflicts:
            raise
        current = deps.store.get_payment(payment.id, with_metadata=call is not None)
        if current is None or current.status is Status.REQUIRES_CAPTURE or action is None:
            raise
        return _answer(deps, current, action.kind, call) if call is not None else current
    if call is not None and not done and action is not None:
        return _answer(deps, after, action.kind, call)
    return after


def _finished(payment: Payment, charge: Charge, now: datetime) -> tuple[Payment, list[Entry]]:
    """The payment and entries the charge's state books, or ``GatewayInvalidAnswer``."""
    if (charge.id, charge.reference, charge.currency.upper()) != (payment.charge_id, payment.id, payment.currency):
        raise GatewayInvalidAnswer(f"the gateway's charge {charge.id} does not match {payment.id}")
    if charge.status == "succeeded":
        action = payment.action
        asked = action.amount if action is not None and action.kind is ActionKind.CAPTURE else None
        if not 0 < charge.amount_captured <= payment.amount or asked not in (None, charge.amount_captured):
            raise GatewayInvalidAnswer(f"charge {charge.id}: captured {charge.amount_captured}, not {asked}")
        return payment.capture_amount(charge.amount_captured, now)
    if charge.status in FINISHED:
        action = payment.action
        expired = charge.status == "expired" or (action is not None and action.reason is CancellationReason.EXPIRED)
        reason = CancellationReason.EXPIRED if expired else CancellationReason.REQUESTED_BY_CUSTOMER
        return payment.cancel(reason, now)
    raise GatewayInvalidAnswer(f"charge {charge.id} is {charge.status!r:.20}, not finished")


def _did(kind: ActionKind, payment: Payment) -> bool:
    return payment.status is (Status.SUCCEEDED if kind is ActionKind.CAPTURE else Status.CANCELED)


def _answer(deps: Dependencies[UoW], payment: Payment, kind: ActionKind, call: KeyedAction | None) -> Payment:
    """The answer for a key whose action is settled: the payment when it ended as the action asked (kept for
    replays), else the refusal (nothing kept: a retry is refused the same)."""
    if _did(kind, payment):
        if call is not None:
            store_answer(deps, call, payment)
        return payment
    if call is not None:
        deps.idempotency.forget(call.key)
    payment.claim(Action(kind, payment.created_at, amount=payment.amount))  # raises the refusal
    raise AssertionError(payment.id)
