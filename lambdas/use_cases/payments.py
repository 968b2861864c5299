"""POST /payments: charge a card or a token, exactly once per idempotency key.

A payment is recorded ``pending`` together with the key's claim (and the card's
velocity count) before the gateway is asked, and settled together with the
stored answer after. A lost answer leaves it pending: a retry with the same
key, or reconciliation, settles it by looking the charge up by reference."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from lambdas.domain.cards import Card, MaskedCard, check_expiry, member_param, parse_card, refuse_card_numbers
from lambdas.domain.errors import InvalidRequest
from lambdas.domain.events import payment_event
from lambdas.domain.ids import is_id, new_id
from lambdas.domain.money import check_amount, normalize_currency
from lambdas.domain.payments import CancellationReason, Payment, Status
from lambdas.domain.rules import VELOCITY_RULE, PaymentAttempt
from lambdas.gateway import Charge, GatewayError, GatewayInvalidAnswer
from lambdas.ports import LostRace, UoW
from lambdas.use_cases import Dependencies, gateway_failed, recorded, request_digest, store_answer
from lambdas.use_cases.idempotency import Fresh, Keyed, Replay, Resume
from lambdas.use_cases.tokens import CardInput

DECLINE_CODE = re.compile(r"[a-z_]{1,64}")
# What the gateway's answer to a payment may say: charged, or without capture authorised (and maybe expired since),
# or declined.
CHARGED, AUTHORIZED = ("succeeded", "declined"), ("authorized", "expired", "declined")


@dataclass(frozen=True)
class PaymentCommand:
    amount: int
    currency: str
    token: str | None = None
    card: CardInput | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None
    capture: bool = True  # False: authorise only


@dataclass(frozen=True)
class PaymentOutcome:
    """How a request for a payment ends: the payment settled by the gateway (succeeded or declined), given up
    (failed), or declined by the rule ``blocked_by`` names."""

    payment: Payment
    blocked_by: str | None = None


# A payment request's idempotency key, and the answer the edge sends for its outcome.
KeyedPayment = Keyed[PaymentOutcome]


@dataclass(frozen=True)
class Source:
    """The card to charge: shown masked, opened only when the gateway is asked."""

    masked: MaskedCard
    digest_fields: dict[str, Any]  # the source as the request digest sees it: never a PAN or CVC
    open: Callable[[], Card] = field(repr=False)


def create_payment(deps: Dependencies[UoW], command: PaymentCommand, call: KeyedPayment) -> PaymentOutcome | Replay:
    amount = check_amount(command.amount)
    currency = normalize_currency(command.currency)
    refuse_card_numbers(command.description or "", "description")
    for position, (name, value) in enumerate((command.metadata or {}).items()):
        param = member_param("metadata", name, position)  # never echoes a card number
        refuse_card_numbers(name, param)
        refuse_card_numbers(value, param)
    payment_id = new_id("pay")
    source = _resolve_source(deps, command, payment_id)
    digest = request_digest(
        {
            "amount": amount,
            "currency": currency,
            "source": source.digest_fields,
            "description": command.description,
            "metadata": command.metadata,
            **({} if command.capture else {"capture": False}),
        }
    )
    now = deps.clock()
    payment = Payment(
        payment_id,
        amount,
        currency,
        source.masked,
        now,
        description=command.description,
        metadata=dict(command.metadata or {}),
        idempotency_id=call.key,
        capture=command.capture,
    )
    violation = deps.rules.first_violation(PaymentAttempt(amount, currency, source.masked.fingerprint))
    if violation:
        return _decline_by_rule(deps, payment, violation, source, call, digest)
    uow = deps.store.unit_of_work()
    deps.store.add_payment(uow, payment)
    if deps.rules.velocity_per_hour:
        deps.velocity.count(uow, source.masked.fingerprint, now, deps.rules.velocity_per_hour)
    try:
        begun = deps.idempotency.begin(uow, call.key, digest, payment.id)
    except LostRace as race:
        if "velocity" not in race.conflicts:
            raise
        return _decline_by_rule(deps, payment, VELOCITY_RULE, source, call, digest)
    match begun:
        case Fresh():
            return _charge(deps, payment, source, call)
        case Replay():
            return begun
        case Resume(resource_id=payment_id):
            return _resume(deps, payment_id, source, call)
    raise AssertionError(begun)


def _resolve_source(deps: Dependencies[UoW], command: PaymentCommand, payment_id: str) -> Source:
    today = deps.clock().date()
    if command.token is not None:
        token_id = command.token
        stored = deps.store.get_token(token_id, for_payment=payment_id) if is_id("tok", token_id) else None
        if stored is None:
            raise InvalidRequest("No such token.", "source.token", "token_not_found")
        check_expiry(stored.card.exp_month, stored.card.exp_year, today, "source.token")
        return Source(stored.card, {"token": token_id}, lambda: deps.vault.open(token_id, stored.sealed_card))
    given = command.card
    if given is None:
        raise InvalidRequest("source takes either token or card.", "source")
    card = parse_card(
        given.number, given.exp_month, given.exp_year, today, "source.card", cvc=given.cvc, cvc_required=True
    )
    masked = deps.vault.mask(card, deps.vault.fingerprint(card.number))
    fields = {"card": {"fingerprint": masked.fingerprint, "exp_month": card.exp_month, "exp_year": card.exp_year}}
    return Source(masked, fields, lambda: card)


def _decline_by_rule(
    deps: Dependencies[UoW], payment: Payment, rule: str, source: Source, call: KeyedPayment, digest: str
) -> PaymentOutcome | Replay:
    outcome = PaymentOutcome(payment.decline("rule_blocked"), blocked_by=rule)
    uow = deps.store.unit_of_work()
    deps.store.add_payment(uow, outcome.payment)
    deps.store.add_event(uow, payment_event(outcome.payment, deps.clock()))
    begun = deps.idempotency.begin(uow, call.key, digest, payment.id, call.answer(outcome))
    match begun:
        case Fresh():
            return outcome
        case Replay():
            return begun
        case Resume(resource_id=payment_id):
            return _resume(deps, payment_id, source, call)
    raise AssertionError


def _charge(deps: Dependencies[UoW], payment: Payment, source: Source, call: KeyedPayment) -> PaymentOutcome:
    """Ask the gateway (with the payment id as its idempotency key) and record its answer. Whatever fails
    here leaves the key retryable: a retry then settles this payment by reference, never a second."""
    try:
        charge = deps.gateway.charge(
            payment.id,
            payment.amount,
            payment.currency,
            source.open(),
            idempotency_key=payment.id,
            capture=payment.capture,
        )
    except GatewayError as error:
        raise gateway_failed(deps, call, error, payment.id) from None
    except Exception:
        deps.idempotency.release(call.key)
        raise
    return _record_answer(deps, payment, charge, call)


def _record_answer(deps: Dependencies[UoW], payment: Payment, charge: Charge, call: KeyedPayment) -> PaymentOutcome:
    """Record a charge the gateway answered with (``recorded``: or leave the payment pending)."""
    return recorded(deps, call, lambda: settle(deps, payment, check_charge(payment, charge), call), payment.id)


def _resume(deps: Dependencies[UoW], payment_id: str, source: Source, call: KeyedPayment) -> PaymentOutcome:
    """A retry after a 5xx (or an abandoned attempt): settle that payment, never start a second."""
    payment = deps.store.get_payment(payment_id)
    if payment is None:
        raise RuntimeError(f"the key's payment {payment_id} is missing")
    if payment.status is not Status.PENDING:
        return settled_elsewhere(deps, payment, call)
    try:
        charge = deps.gateway.find_charge(payment.id)
    except GatewayError as error:
        raise gateway_failed(deps, call, error, payment.id) from None
    if charge is None:
        return _charge(deps, payment, source, call)  # same gateway key: never charged twice
    return _record_answer(deps, payment, charge, call)


def check_charge(payment: Payment, charge: Charge) -> Charge:
    """A charge that can be booked for ``payment``, or ``GatewayInvalidAnswer``."""
    if (charge.reference, charge.amount, charge.currency.upper()) != (payment.id, payment.amount, payment.currency):
        raise GatewayInvalidAnswer(f"the gateway's charge {charge.id} does not match {payment.id}")
    if charge.status not in (CHARGED if payment.capture else AUTHORIZED):
        raise GatewayInvalidAnswer(f"a charge status of {charge.status!r:.20} for {payment.id}")
    if charge.decline_code is not None and not DECLINE_CODE.fullmatch(charge.decline_code):
        return replace(charge, decline_code="generic_decline")  # echoed and stored: a word, never free text
    return charge


def settle(deps: Dependencies[UoW], payment: Payment, charge: Charge, call: KeyedPayment | None) -> PaymentOutcome:
    """Record the gateway's answer: the payment's new state, its entries, its event and the reply, at once (an
    authorisation that expired before its answer was booked goes from pending to canceled: one event)."""
    now = deps.clock()
    if charge.status == "succeeded":
        settled, entries = payment.succeed(charge.id, now)
    elif charge.status in ("authorized", "expired"):
        settled, entries = payment.authorize(charge.id, now)
        if charge.status == "expired":  # authorised, and expired at the gateway before its answer was booked
            settled, released = settled.cancel(CancellationReason.EXPIRED, now)
            entries += released
    else:
        settled, entries = payment.decline(charge.decline_code or "generic_decline", charge.id), []
    outcome = PaymentOutcome(settled)
    uow = deps.store.unit_of_work()
    deps.store.settle_payment(uow, payment, settled, entries)
    deps.store.add_event(uow, payment_event(settled, now))
    if call is not None:
        deps.idempotency.complete(uow, call.key, call.answer(outcome))
    try:
        uow.commit()
    except LostRace as race:
        if "payment" not in race.conflicts:
            raise
        # settled elsewhere first; metadata is opened only for a reply (reconciliation may not decrypt it)
        current = deps.store.get_payment(payment.id, with_metadata=call is not None)
        if current is None or current.status is Status.PENDING:
            raise
        return settled_elsewhere(deps, current, call)
    return outcome


def settled_elsewhere(deps: Dependencies[UoW], payment: Payment, call: KeyedPayment | None) -> PaymentOutcome:
    """The outcome of a payment already settled elsewhere, its answer stored for replays."""
    outcome = PaymentOutcome(payment)
    if call is not None:
        store_answer(deps, call, outcome)
    return outcome
