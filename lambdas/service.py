"""The payment service: every route's use case, written against the adapters'
small interfaces (ledger store, idempotency store, vault, gateway) and the domain."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from lambdas.adapters.envelope import Sealed
from lambdas.adapters.idempotency import IdempotencyStore, Record, State
from lambdas.adapters.ledger_store import LedgerStore
from lambdas.adapters.vault import CardVault
from lambdas.domain.cards import Card, MaskedCard, check_expiry, contains_card_number, parse_card, refuse_card_numbers
from lambdas.domain.errors import GatewayFailed, IdempotencyConflict, InvalidRequest, NotFound
from lambdas.domain.ids import new_id
from lambdas.domain.money import check_amount, normalize_currency
from lambdas.domain.payments import Payment, Status
from lambdas.domain.rules import PaymentAttempt, RuleSet
from lambdas.gateway import Charge, Gateway, GatewayOutcomeUnknown, GatewayRejected, GatewayUnavailable
from lambdas.presenters import error_body, ledger_body, payment_body, refund_body, token_body

VELOCITY_WINDOW = timedelta(hours=1)
WRITE_RETRIES = 3
GATEWAY_FAILURES = (GatewayOutcomeUnknown, GatewayUnavailable, GatewayRejected)


@dataclass(frozen=True)
class CardInput:
    number: str
    exp_month: int
    exp_year: int
    cvc: str | None = None
    holder_name: str | None = None


@dataclass(frozen=True)
class PaymentCommand:
    amount: int
    currency: str
    token: str | None = None
    card: CardInput | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class Idempotency:
    record_id: str
    body_hash: str


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict
    replayed: bool = False


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class PaymentService:
    def __init__(self, store: LedgerStore, idempotency: IdempotencyStore, vault: CardVault, gateway: Gateway,
                 rules: RuleSet, clock: Callable[[], datetime] = _utc_now) -> None:  # fmt: skip
        self.store = store
        self.idempotency = idempotency
        self.vault = vault
        self.gateway = gateway
        self.rules = rules
        self.clock = clock

    # -- idempotency --------------------------------------------------------------

    def _previous(self, idem: Idempotency) -> tuple[Answer | None, Record | None]:
        """A replay, a conflict (raised), or the record of an attempt to resume."""
        record = self.idempotency.get(idem.record_id)
        if record is None:
            return None, None
        if record.body_hash != idem.body_hash:
            raise IdempotencyConflict(422, "idempotency_key_reused", "This Idempotency-Key was used with a different request body.")
        if record.state is State.COMPLETED:
            return Answer(record.response_status, self._open_answer(record), replayed=True), record
        if record.state is State.IN_PROGRESS and not record.abandoned(self.clock().timestamp()):
            raise _key_in_use()
        return None, record

    def _seal_answer(self, record_id: str, body: dict) -> str:
        text = json.dumps(body, separators=(",", ":"))
        if not body.get("metadata"):  # only payments carry data worth sealing
            return text
        sealed = self.store.metadata_cipher.seal(text.encode(), record_id)
        return json.dumps({"sealed": {k: v.hex() for k, v in sealed.to_item().items()}})

    def _open_answer(self, record: Record) -> dict:
        stored = json.loads(record.response_body)
        if "sealed" not in stored:
            return stored
        sealed = Sealed.from_item({k: bytes.fromhex(v) for k, v in stored["sealed"].items()})
        return json.loads(self.store.metadata_cipher.open(sealed, record.id))

    def _write_first(self, parts: list[dict], idem: Idempotency) -> Answer | None:
        """Write the parts that claim the key; on a lost race, the winner's outcome."""
        if self.store.write_unless_raced(parts):
            return None
        answer, record = self._previous(idem)
        if answer:
            return answer
        raise _key_in_use()

    def _completion(self, idem: Idempotency, answer: Answer) -> dict:
        """Transaction part storing ``answer`` for replays of ``idem``."""
        return self.idempotency.complete(idem.record_id, answer.status, self._seal_answer(idem.record_id, answer.body))

    def _claim_completed(self, idem: Idempotency, resource_id: str, answer: Answer) -> dict:
        """Transaction part taking ``idem`` with ``answer`` already stored (the request made no outside call)."""
        return self.idempotency.claim_completed(idem.record_id, idem.body_hash, resource_id, answer.status,
                                                self._seal_answer(idem.record_id, answer.body))  # fmt: skip

    # -- tokens -------------------------------------------------------------------

    def tokenize(self, card_input: CardInput, request_id: str, idem: Idempotency | None) -> Answer:
        if card_input.cvc is not None:
            raise InvalidRequest("A CVC is never stored: send it only with a payment.", "card.cvc", "cvc_not_accepted")
        card = parse_card(card_input.number, card_input.exp_month, card_input.exp_year, self.clock().date(), "card",
                          holder_name=card_input.holder_name)  # fmt: skip
        if idem:
            answer, _ = self._previous(idem)
            if answer:
                return answer
        token_id, now = new_id("tok"), self.clock()
        masked = self.vault.mask(card, self.vault.fingerprint(card.number))
        answer = Answer(201, token_body(token_id, masked, now))
        parts = [self.store.new_token(token_id, masked, self.vault.seal(token_id, card), now)]
        if idem is None:
            self.store.write(parts)
            return answer
        parts.append(self._claim_completed(idem, token_id, answer))
        return self._write_first(parts, idem) or answer

    # -- payments -----------------------------------------------------------------

    def create_payment(self, command: PaymentCommand, request_id: str, idem: Idempotency) -> Answer:
        amount = check_amount(command.amount)
        currency = normalize_currency(command.currency)
        refuse_card_numbers(command.description or "", "description")
        for key, value in (command.metadata or {}).items():
            param = "metadata" if contains_card_number(key) else f"metadata.{key}"  # never echo a card number
            refuse_card_numbers(f"{key} {value}", param)
        answer, record = self._previous(idem)
        if answer:
            return answer
        if record:
            return self._resume_payment(record, command, request_id, idem)
        card, masked = self._resolve_source(command)
        now = self.clock()
        payment = Payment(new_id("pay"), amount, currency, masked, now, description=command.description,
                          metadata=dict(command.metadata or {}))  # fmt: skip
        recent = self.store.count_payments_since(masked.fingerprint, now - VELOCITY_WINDOW)
        violation = self.rules.first_violation(PaymentAttempt(amount, currency, masked.fingerprint, recent))
        if violation:
            declined = payment.decline("rule_blocked")
            message = f"The payment was blocked by rule '{violation}'."
            answer = Answer(402, self._declined(declined, request_id, message))
            parts = [self.store.new_payment(declined), self._claim_completed(idem, payment.id, answer)]
            return self._write_first(parts, idem) or answer
        parts = [self.store.new_payment(payment), self.idempotency.claim(idem.record_id, idem.body_hash, payment.id)]
        lost_race = self._write_first(parts, idem)
        if lost_race:
            return lost_race
        return self._charge(payment, card, request_id, idem)

    def _resolve_source(self, command: PaymentCommand) -> tuple[Card, MaskedCard]:
        if command.token is not None:
            stored = self.store.get_token(command.token)
            if stored is None:
                raise InvalidRequest("No such token.", "source.token", "token_not_found")
            masked, sealed, _ = stored
            check_expiry(masked.exp_month, masked.exp_year, self.clock().date(), "source.token")
            return self.vault.open(command.token, sealed), masked
        given = command.card
        card = parse_card(given.number, given.exp_month, given.exp_year, self.clock().date(), "source.card",
                          cvc=given.cvc, cvc_required=True)  # fmt: skip
        return card, self.vault.mask(card, self.vault.fingerprint(card.number))

    def _charge(self, payment: Payment, card: Card, request_id: str, idem: Idempotency) -> Answer:
        try:
            charge = self.gateway.charge(payment.id, payment.amount, payment.currency, card, idempotency_key=payment.id)
        except GATEWAY_FAILURES as error:
            raise self._gateway_failed(payment.id, error, idem) from None
        return self._settle(payment, charge, request_id, idem)

    def _gateway_failed(self, payment_id: str, error: Exception, idem: Idempotency) -> GatewayFailed:
        """The error to raise when the gateway failed; the key is released so a retry can try again."""
        self.idempotency.release(idem.record_id)
        return GatewayFailed(payment_id, timed_out=isinstance(error, GatewayOutcomeUnknown))

    def _settle(self, payment: Payment, charge: Charge, request_id: str, idem: Idempotency | None) -> Answer:
        """Record the gateway's answer: the payment's new state, its entries and the reply, at once."""
        if charge.status == "succeeded":
            settled, entries = payment.succeed(charge.id, self.clock())
        else:
            settled, entries = payment.decline(charge.decline_code or "generic_decline", charge.id), []
        answer = self._settled_answer(settled, request_id)
        parts = [self.store.change_payment(payment, settled), *self.store.new_entries(entries)]
        if idem:
            parts.append(self._completion(idem, answer))
        if self.store.write_unless_raced(parts):
            return answer
        current = self.store.get_payment(payment.id)
        if current is None or current.status is Status.PENDING:
            raise RuntimeError(f"payment {payment.id} could not be settled")
        return self._answer_settled_elsewhere(current, request_id, idem)  # reconciliation got there first

    def _settled_answer(self, payment: Payment, request_id: str) -> Answer:
        if payment.status is Status.DECLINED:
            return Answer(402, self._declined(payment, request_id, "The card was declined."))
        return Answer(201, payment_body(payment))

    def _answer_settled_elsewhere(self, payment: Payment, request_id: str, idem: Idempotency | None) -> Answer:
        """The answer for a payment already settled elsewhere, stored for replays."""
        answer = self._settled_answer(payment, request_id)
        if idem:
            self.store.write([self._completion(idem, answer)])
        return answer

    def _resume_payment(self, record: Record, command: PaymentCommand, request_id: str, idem: Idempotency) -> Answer:
        """A retry after a 5xx (or an abandoned attempt): settle that payment, never start a second."""
        replay = self._write_first([self.idempotency.claim(idem.record_id, idem.body_hash, record.resource_id, record)], idem)
        if replay:
            return replay
        payment = self.store.get_payment(record.resource_id)
        if payment.status is Status.PENDING:
            try:
                charge = self.gateway.find_charge(payment.id)
            except GATEWAY_FAILURES as error:
                raise self._gateway_failed(payment.id, error, idem) from None
            if charge is None:
                card, _ = self._resolve_source(command)
                return self._charge(payment, card, request_id, idem)
            return self._settle(payment, charge, request_id, idem)
        if payment.status is Status.FAILED:
            self.idempotency.release(idem.record_id)
            raise GatewayFailed(payment.id, timed_out=False)
        return self._answer_settled_elsewhere(payment, request_id, idem)  # by reconciliation, perhaps refunded since

    def _declined(self, payment: Payment, request_id: str, message: str) -> dict:
        return error_body("card_error", "card_declined", message, request_id, decline_code=payment.decline_code,
                          payment_id=payment.id)  # fmt: skip

    # -- refunds ------------------------------------------------------------------

    def refund(self, payment_id: str, amount: int | None, request_id: str, idem: Idempotency) -> Answer:
        if amount is not None:
            check_amount(amount)
        answer, record = self._previous(idem)
        if answer:
            return answer
        payment = self._payment(payment_id, with_metadata=False)
        refund_id = record.resource_id if record else new_id("re")
        amount = payment.check_refund(amount)
        replay = self._write_first([self.idempotency.claim(idem.record_id, idem.body_hash, refund_id, record)], idem)
        if replay:
            return replay
        try:
            gateway_refund_id = self.gateway.refund(payment.charge_id, amount, idempotency_key=refund_id)
        except GatewayRejected:
            self.idempotency.forget(idem.record_id)
            raise InvalidRequest("The gateway refused the refund amount.", "amount", "amount_too_large") from None
        except (GatewayOutcomeUnknown, GatewayUnavailable) as error:
            raise self._gateway_failed(payment_id, error, idem) from None
        for _ in range(WRITE_RETRIES):  # another refund may have moved the payment since it was read
            refunded, refund, entries = payment.refund(refund_id, amount, self.clock(), gateway_refund_id)
            answer = Answer(201, refund_body(refund))
            parts = [self.store.change_payment(payment, refunded), self.store.new_refund(refund),
                     *self.store.new_entries(entries), self._completion(idem, answer)]
            if self.store.write_unless_raced(parts):
                return answer
            payment = self._payment(payment_id, with_metadata=False)
        raise RuntimeError(f"refund {refund_id} could not be recorded after {WRITE_RETRIES} attempts")

    # -- reads --------------------------------------------------------------------

    def _payment(self, payment_id: str, with_metadata: bool = True) -> Payment:
        payment = self.store.get_payment(payment_id, with_metadata) if payment_id.startswith("pay_") else None
        if payment is None:
            raise NotFound(f"No such payment: {payment_id[:40]}")
        return payment

    def get_payment(self, payment_id: str) -> Answer:
        return Answer(200, payment_body(self._payment(payment_id)))

    def ledger(self, payment_id: str) -> Answer:
        self._payment(payment_id, with_metadata=False)
        return Answer(200, ledger_body(payment_id, self.store.entries(payment_id)))

    # -- reconciliation -----------------------------------------------------------

    def reconcile(self, settle_after: timedelta = timedelta(minutes=1),
                  give_up_after: timedelta = timedelta(hours=1)) -> dict[str, int]:  # fmt: skip
        """Settle payments left pending by lost answers; fail those the gateway never charged."""
        counts = {"settled": 0, "failed": 0, "still_pending": 0}
        now = self.clock()
        for payment_id in self.store.pending_payment_ids(now - settle_after):
            payment = self.store.get_payment(payment_id, with_metadata=False)
            charge = self.gateway.find_charge(payment_id)
            if charge is not None:
                self._settle(payment, charge, "reconcile", None)
                counts["settled"] += 1
            elif now - payment.created_at > give_up_after:
                self.store.write([self.store.change_payment(payment, payment.fail())])
                counts["failed"] += 1
            else:
                counts["still_pending"] += 1
        return counts


def _key_in_use() -> IdempotencyConflict:
    message = "A request with this Idempotency-Key is still in progress."
    return IdempotencyConflict(409, "idempotency_key_in_use", message)
