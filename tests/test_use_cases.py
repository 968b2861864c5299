"""The use cases on in-memory fakes: money under concurrency, lost and bad
gateway answers, reconciliation. Each test names the break it guards against."""

import threading
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from lambdas.bootstrap import AwsAdapters
from lambdas.domain.errors import GatewayFailed, IdempotencyConflict, InvalidRequest, NotFound
from lambdas.domain.idempotency import State
from lambdas.domain.merchants import Merchant
from lambdas.domain.payments import RefundStatus, Status, balance
from lambdas.domain.rules import RuleSet
from lambdas.gateway import Charge, GatewayRefund
from lambdas.service import PaymentService
from lambdas.use_cases.checkpoints import write_checkpoint
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.tokens import CardInput
from tests.support.api_reference import ERROR_CODES
from tests.support.fakes import MERCHANT, FakeLedgerStore, fake_world
from tests.support.fakes_gateway import FakeGateway, Fault
from tests.support.payments import DECLINED_CARD, VISA, captured, card, pay

# -- refunds: pending, reserved, never sent twice ----------------------------------------------------


def test_concurrent_refunds_with_different_keys_never_ask_for_more_than_was_captured(world, gateway):
    payment_id = captured(world, 100)
    outcomes, barrier = [], threading.Barrier(10)

    def refund(n: int) -> None:
        barrier.wait()
        try:
            outcomes.append(world.service.refund(payment_id, 30, f"r{n}").status)
        except InvalidRequest as refused:
            outcomes.append((400, refused.param))

    threads = [threading.Thread(target=refund, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(outcomes) == {201: 3, (400, "amount"): 7}
    charge_id = world.ledger.payments[payment_id].charge_id
    assert gateway.refunded_total(charge_id) == 90
    assert world.service.get_payment(payment_id).body["amount_refunded"] == 90
    assert -balance(world.ledger.entries[payment_id])["merchant_balance"] == 10


def test_a_lost_refund_answer_stays_pending_reserved_and_a_retry_settles_it_without_sending_again(world, gateway):
    payment_id = captured(world, 1000)
    gateway.fail_next("refund", Fault.LOST)
    with pytest.raises(GatewayFailed) as lost:
        world.service.refund(payment_id, 600, "r1")
    assert lost.value.timed_out and lost.value.payment_id == payment_id and lost.value.refund_id.startswith("re_")
    refund = world.ledger.refunds[(payment_id, lost.value.refund_id)]
    assert refund.status is RefundStatus.PENDING
    with pytest.raises(InvalidRequest):  # the pending refund holds its amount
        world.service.refund(payment_id, 500, "r2")
    assert world.service.get_payment(payment_id).body["amount_refunded"] == 0  # succeeded refunds only
    answer = world.service.refund(payment_id, 600, "r1")
    assert (answer.status, answer.body["id"], answer.body["status"]) == (201, refund.id, "succeeded")
    assert len(gateway.refunds()) == 1
    assert world.service.refund(payment_id, 600, "r1").replayed


def test_reconciliation_settles_a_pending_refund_by_reference(world, gateway):
    payment_id = captured(world, 1000)
    gateway.fail_next("refund", Fault.SLOW)
    with pytest.raises(GatewayFailed) as slow:
        world.service.refund(payment_id, 400, "r1")
    world.clock.advance(timedelta(minutes=2))
    assert world.service.reconcile()["settled"] == 1
    assert world.ledger.refunds[(payment_id, slow.value.refund_id)].status is RefundStatus.SUCCEEDED
    assert world.service.get_payment(payment_id).body["amount_refunded"] == 400


def test_a_refund_the_gateway_never_made_is_cancelled_after_the_give_up_time_and_frees_its_amount(world, gateway):
    payment_id = captured(world, 1000)
    gateway.fail_next("refund", Fault.UNAVAILABLE)
    with pytest.raises(GatewayFailed) as failed:
        world.service.refund(payment_id, 1000, "r1")
    assert not failed.value.timed_out
    world.clock.advance(timedelta(hours=2))
    assert world.service.reconcile()["failed"] == 1
    assert world.service.refund(payment_id, 1000, "r2").status == 201


def test_only_an_amount_error_from_the_gateway_is_a_400(world, gateway):
    payment_id = captured(world, 1000)
    charge_id = world.ledger.payments[payment_id].charge_id
    gateway.refund(charge_id, 900, reference="re_outside", idempotency_key="outside")  # drift: refunded elsewhere
    with pytest.raises(InvalidRequest) as refused:
        world.service.refund(payment_id, 500, "r1")
    assert (refused.value.param, refused.value.code) == ("amount", "amount_too_large")
    assert isinstance(refused.value.message, str) and refused.value.message  # the 400 says why
    assert world.ledger.payments[payment_id].amount_reserved == 0  # the reservation was released
    gateway.fail_next("refund", Fault.UNAVAILABLE)
    with pytest.raises(GatewayFailed):
        world.service.refund(payment_id, 100, "r2")


# -- charges: checked answers, reconciliation that never fails a live request -----------------------


class _Lying(FakeGateway):
    """Answers a charge for another amount than asked."""

    def charge(self, reference, amount, currency, card, idempotency_key, capture=True) -> Charge:
        real = super().charge(reference, amount, currency, card, idempotency_key, capture)
        return Charge(real.id, real.status, real.decline_code, amount + 1, real.currency, real.reference)


def test_a_charge_that_differs_from_the_payment_is_a_502_and_the_key_stays_retryable():
    world = fake_world(_Lying())
    with pytest.raises(GatewayFailed) as failed:
        pay(world, key="k")
    assert not failed.value.timed_out
    payment = world.ledger.payments[failed.value.payment_id]
    assert payment.status is Status.PENDING and world.ledger.entries.get(payment.id) is None


def test_garbage_from_the_gateway_is_not_booked_as_a_decline_and_a_retry_settles(world, gateway):
    gateway.fail_next("charge", Fault.GARBAGE)
    with pytest.raises(GatewayFailed) as failed:
        pay(world, key="k")
    assert world.ledger.payments[failed.value.payment_id].status is Status.PENDING
    answer = pay(world, key="k")
    assert (answer.status, answer.body["id"]) == (201, failed.value.payment_id)
    assert len(gateway.charges()) == 1


def test_reconciliation_never_fails_a_payment_whose_key_a_request_holds(world, gateway):
    gateway.fail_next("charge", Fault.UNAVAILABLE)
    with pytest.raises(GatewayFailed) as failed:
        pay(world, key="k")
    payment_id = failed.value.payment_id
    world.clock.advance(timedelta(hours=2))
    key = world.ledger.payments[payment_id].idempotency_id
    world.db.records[key] = replace(
        world.db.records[key], state=State.IN_PROGRESS, in_flight_until=int(world.clock.epoch()) + 30
    )  # a retry is settling it now
    counts = world.service.reconcile()
    assert counts == {
        "settled": 0,
        "failed": 0,
        "expired": 0,
        "still_pending": 1,
        "errors": 0,
        "deferred": 0,
        "overdue": 1,
    }
    assert world.ledger.payments[payment_id].status is Status.PENDING


def test_a_payment_given_up_answers_its_key_with_a_final_402_that_is_replayed_the_same(world, gateway):
    """Not the 502 of a gateway that may still answer: a retry of that would never end. The payment failed for
    good, as a decline is final: a 402 ``gateway_error`` kept for replays, never a 201, never a second charge."""
    gateway.fail_next("charge", Fault.UNAVAILABLE)
    with pytest.raises(GatewayFailed) as failed:
        pay(world, key="k")
    payment_id = failed.value.payment_id
    world.clock.advance(timedelta(hours=2))
    assert world.service.reconcile()["failed"] == 1
    first, replay = pay(world, key="k"), pay(world, key="k")
    error = first.body["error"]
    assert (first.status, error["type"], error["code"], error["payment_id"]) == (
        402, "gateway_error", "payment_failed", payment_id
    )  # fmt: skip
    assert ERROR_CODES["payment_failed"] == ("402", "gateway_error") and "new Idempotency-Key" in error["message"]
    assert not first.replayed and replay.replayed and (replay.status, replay.body) == (first.status, first.body)
    assert world.ledger.payments[payment_id].status is Status.FAILED and gateway.charges() == []


def test_one_items_error_does_not_stop_the_run(world, gateway):
    gateway.fail_next("charge", Fault.LOST, Fault.LOST)
    for key in ("a", "b"):
        with pytest.raises(GatewayFailed):
            pay(world, key=key)
    world.clock.advance(timedelta(minutes=2))
    gateway.fail_next("find_charge", Fault.GARBAGE)
    counts = world.service.reconcile()
    assert counts == {
        "settled": 1,
        "failed": 0,
        "expired": 0,
        "still_pending": 0,
        "errors": 1,
        "deferred": 0,
        "overdue": 0,
    }


# -- velocity and idempotency ------------------------------------------------------------------------


def test_the_velocity_rule_is_exact_under_concurrency(gateway):
    world = fake_world(gateway, RuleSet(velocity_per_hour=5))
    statuses, barrier = [], threading.Barrier(12)

    def attempt(n: int) -> None:
        barrier.wait()
        answer = pay(world, key=f"v{n}")
        statuses.append((answer.status, answer.body.get("error", {}).get("decline_code")))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(statuses) == {(201, None): 5, (402, "rule_blocked"): 7}
    assert len(gateway.charges()) == 5


def test_an_expired_key_starts_a_new_payment_at_once(world, gateway):
    first = pay(world, key="k").body["id"]
    world.clock.advance(timedelta(hours=24, seconds=1))
    second = pay(world, key="k", amount=2000)
    assert second.status == 201 and second.body["id"] != first and not second.replayed


def test_a_rule_decline_stored_in_dynamodb_is_replayed_to_its_key(moto_resources, gateway):
    """On the DynamoDB adapters (moto): the record a rule decline stores at once replays like any other."""
    adapters = AwsAdapters(moto_resources, gateway)
    service = PaymentService(adapters.dependencies(Merchant(MERCHANT, RuleSet(max_amount={"USD": 500}))))
    command = PaymentCommand(501, "usd", card=card())
    first = service.create_payment(command, "req", "k")
    again = service.create_payment(command, "req", "k")
    assert first.status == 402 and first.body["error"]["decline_code"] == "rule_blocked"
    assert again.replayed and (again.status, again.body) == (first.status, first.body)
    assert gateway.charges() == []


def test_a_different_body_with_the_same_key_is_422_and_nothing_is_written(world):
    pay(world, key="k")
    payments = dict(world.ledger.payments)
    with pytest.raises(IdempotencyConflict) as conflict:
        pay(world, key="k", amount=1001)
    assert conflict.value.status == 422 and world.ledger.payments == payments


def test_refund_gateway_answers_are_checked(world, gateway):
    payment_id = captured(world, 1000)

    class _WrongAmount(FakeGateway):
        def refund(self, charge_id, amount, reference, idempotency_key) -> GatewayRefund:
            made = gateway.refund(charge_id, amount, reference, idempotency_key)
            return GatewayRefund(made.id, made.charge_id, amount - 1, made.status, made.reference)

    service = PaymentService(replace(world.deps, gateway=_WrongAmount()))
    with pytest.raises(GatewayFailed) as failed:
        service.refund(payment_id, 100, "r")
    assert world.ledger.refunds[(payment_id, failed.value.refund_id)].status is RefundStatus.PENDING


# -- paths the mutation run found untested --------------------------------------------------------------


def test_a_rule_decline_is_replayed_and_its_key_refuses_another_body(gateway):
    world = fake_world(gateway, RuleSet(max_amount={"USD": 500}))
    first = pay(world, key="r", amount=501)
    assert first.status == 402 and first.body["error"]["decline_code"] == "rule_blocked"
    assert "max_amount" in first.body["error"]["message"]
    again = pay(world, key="r", amount=501)
    assert again.replayed and (again.status, again.body) == (first.status, first.body)
    with pytest.raises(IdempotencyConflict) as conflict:
        pay(world, key="r", amount=502)
    assert conflict.value.status == 422
    assert gateway.charges() == []


def test_a_refund_booked_by_reconciliation_is_answered_to_the_retry(world, gateway):
    payment_id = captured(world, 1000)
    gateway.fail_next("refund", Fault.LOST)
    with pytest.raises(GatewayFailed) as lost:
        world.service.refund(payment_id, 250, "r1")
    world.clock.advance(timedelta(minutes=2))
    assert world.service.reconcile()["settled"] == 1
    answer = world.service.refund(payment_id, 250, "r1")
    assert (answer.status, answer.body["id"], answer.replayed) == (201, lost.value.refund_id, False)
    assert world.service.refund(payment_id, 250, "r1").replayed
    assert len(gateway.refunds()) == 1


def test_a_refund_that_never_reached_the_gateway_is_sent_by_the_retry(world, gateway):
    payment_id = captured(world, 1000)
    gateway.fail_next("refund", Fault.UNAVAILABLE)
    with pytest.raises(GatewayFailed) as failed:
        world.service.refund(payment_id, 400, "r1")
    gateway.fail_next("find_refund", Fault.UNAVAILABLE)
    with pytest.raises(GatewayFailed) as lookup_failed:  # the lookup fails too: still pending, still retryable
        world.service.refund(payment_id, 400, "r1")
    assert lookup_failed.value.refund_id == failed.value.refund_id
    answer = world.service.refund(payment_id, 400, "r1")
    assert (answer.status, answer.body["id"]) == (201, failed.value.refund_id)
    assert world.service.refund(payment_id, 400, "r1").replayed  # the retry that sent it stored its answer
    assert [r.amount for r in gateway.refunds()] == [400]


def test_an_unknown_payment_is_a_404_that_does_not_repeat_the_id(world):
    for unknown in ("pay_unknown", "4242424242424242"):
        with pytest.raises(NotFound) as missing:
            world.service.get_payment(unknown)
        assert missing.value.code == "resource_missing" and unknown not in missing.value.message


def test_the_ledger_of_a_refunded_payment_balances_and_is_read_without_its_metadata(world):
    payment_id = captured(world, 1000)
    world.service.refund(payment_id, 300, "r1")
    answer = world.service.ledger(payment_id)
    assert answer.status == 200 and answer.body["payment_id"] == payment_id
    entries = answer.body["entries"]
    assert len(entries) == 4 and {e["currency"] for e in entries} == {"USD"}
    net = {}
    for e in entries:
        net[e["account"]] = net.get(e["account"], 0) + (e["amount"] if e["direction"] == "debit" else -e["amount"])
    assert net == {"gateway_receivable:sparkle": 700, "merchant_balance": -700}


def test_a_declined_payment_keeps_the_gateways_charge_id(world, gateway):
    declined = pay(world, number=DECLINED_CARD)
    (charge,) = gateway.charges()
    shown = world.service.get_payment(declined.body["error"]["payment_id"]).body
    assert (shown["status"], shown["gateway"]["charge_id"]) == ("declined", charge.id)


def test_every_read_answers_200(world):
    payment_id = captured(world, 1000)
    assert write_checkpoint(world.deps) == "written"
    service = world.service
    reads = (
        service.get_payment(payment_id),
        service.ledger(payment_id),
        service.list_payments(None, None),
        service.balances(),
        service.latest_checkpoint(),
        service.public_key(),
    )
    assert [answer.status for answer in reads] == [200] * len(reads)


class _Recording(FakeGateway):
    """Keeps every card it was asked to charge."""

    def __init__(self) -> None:
        super().__init__()
        self.cards = []

    def charge(self, reference, amount, currency, card, idempotency_key, capture=True) -> Charge:
        self.cards.append(card)
        return super().charge(reference, amount, currency, card, idempotency_key, capture)


def test_a_card_sent_with_the_payment_reaches_the_gateway_with_its_cvc():
    recording = _Recording()
    assert pay(fake_world(recording)).status == 201
    assert [charged.cvc for charged in recording.cards] == [card().cvc]


def test_a_card_sent_with_a_payment_without_its_cvc_is_refused_and_nothing_is_charged(world, gateway):
    command = PaymentCommand(1000, "usd", card=CardInput(VISA, 12, 2030))
    with pytest.raises(InvalidRequest) as refused:
        world.service.create_payment(command, "req", "k")
    assert (refused.value.param, refused.value.code) == ("source.card.cvc", "missing_cvc")
    assert gateway.charges() == [] and not world.ledger.payments and not world.db.records


def test_a_payment_naming_neither_a_token_nor_a_card_is_refused_naming_the_source(world, gateway):
    with pytest.raises(InvalidRequest) as refused:
        world.service.create_payment(PaymentCommand(1000, "usd"), "req", "k")
    assert (refused.value.param, refused.value.code) == ("source", "invalid_request")
    assert gateway.charges() == [] and not world.ledger.payments and not world.db.records


class _WithoutMetadataKey(FakeLedgerStore):
    """The store as the refund function has it: its role may not decrypt payment metadata."""

    def get_payment(self, payment_id, with_metadata=True, to_book=False):
        if with_metadata:
            raise PermissionError("kms:Decrypt of payment metadata is not granted")
        return super().get_payment(payment_id, with_metadata, to_book)


def test_a_refund_is_made_without_the_key_to_the_payments_metadata(world, gateway):
    payment_id = pay(world, metadata={"order": "o-1"}).body["id"]
    refunding = PaymentService(replace(world.deps, store=_WithoutMetadataKey(world.db, MERCHANT)))
    answer = refunding.refund(payment_id, 300, "r1")
    assert (answer.status, answer.body["amount"], answer.body["status"]) == (201, 300, "succeeded")
    shown = world.service.get_payment(payment_id).body
    assert (shown["amount_refunded"], shown["metadata"]) == (300, {"order": "o-1"})


class _DeclineWith(FakeGateway):
    """Declines with the given decline code."""

    def __init__(self, decline_code: str | None) -> None:
        super().__init__()
        self.decline_code = decline_code

    def charge(self, reference, amount, currency, card, idempotency_key, capture=True) -> Charge:
        real = super().charge(reference, amount, currency, card, idempotency_key, capture)
        return Charge(real.id, "declined", self.decline_code, amount, real.currency, real.reference)


@pytest.mark.parametrize("decline_code", ["see card 4242 4242 4242 4242", None], ids=["not a word", "none"])
def test_a_decline_code_that_is_not_a_word_or_none_is_booked_as_a_generic_decline(decline_code):
    world = fake_world(_DeclineWith(decline_code))
    answer = pay(world, key="k")
    assert (answer.status, answer.body["error"]["decline_code"]) == (402, "generic_decline")


class _Broken(FakeGateway):
    """Fails with something that is not a gateway error (a bug, a library's exception)."""

    def charge(self, reference, amount, currency, card, idempotency_key, capture=True) -> Charge:
        raise KeyError("unexpected")


def test_an_unexpected_failure_after_the_claim_leaves_the_key_retryable(gateway):
    world = fake_world(_Broken())
    with pytest.raises(KeyError):
        pay(world, key="k")
    payment_id = next(iter(world.ledger.payments))
    service = PaymentService(replace(world.deps, gateway=gateway))
    answer = service.create_payment(PaymentCommand(1000, "usd", card=card()), "req", "k")
    assert (answer.status, answer.body["id"]) == (201, payment_id)  # resumed at once, not 409 for a minute


# -- tokens: no CVC, errors named by field, one token per key -----------------------------------------


def vault(world, key: str | None = "tok-key", **changes):
    return world.service.tokenize(replace(CardInput(VISA, 12, 2030, holder_name="Ada Lovelace"), **changes), key)


def test_a_cvc_is_refused_when_vaulting_and_nothing_is_written(world):
    with pytest.raises(InvalidRequest) as refused:
        vault(world, cvc="737")
    assert (refused.value.param, refused.value.code) == ("card.cvc", "cvc_not_accepted")
    assert not world.ledger.tokens and not world.db.records


def test_a_bad_card_is_named_under_card(world):
    with pytest.raises(InvalidRequest) as refused:
        vault(world, number="4242424242424241")
    assert refused.value.param == "card.number"


def test_the_vault_keeps_the_holder_name_but_no_cvc(world):
    token = vault(world).body["token"]
    stored = world.ledger.tokens[token]
    card = world.deps.vault.open(token, stored.sealed_card)
    assert (card.holder_name, card.cvc, card.number.digits) == ("Ada Lovelace", None, VISA)


def test_a_token_key_replays_its_token_and_vaults_once(world):
    first = vault(world)
    again = vault(world)
    assert (again.status, again.body, again.replayed) == (201, first.body, True)
    assert list(world.ledger.tokens) == [first.body["token"]]


@pytest.mark.parametrize(
    "change", [{"number": "5555555555554444"}, {"exp_month": 11}, {"exp_year": 2031}, {"holder_name": "Grace Hopper"}]
)
def test_a_token_key_refuses_another_card(world, change):
    first = vault(world)
    with pytest.raises(IdempotencyConflict) as refused:
        vault(world, **change)
    assert refused.value.status == 422
    assert list(world.ledger.tokens) == [first.body["token"]]


def test_tokens_without_a_key_are_each_new(world):
    assert vault(world, key=None).body["token"] != vault(world, key=None).body["token"]
    assert len(world.ledger.tokens) == 2 and not world.db.records
