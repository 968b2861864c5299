"""Settling what a lost or failed gateway answer left open, on in-memory fakes: what a retry answers and
whether its key is free again, what reconciliation touches, counts and logs. `make mutate` found each of
these paths untested; each test names the break it guards against."""

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from lambdas import deadline
from lambdas.domain.errors import GatewayFailed, IdempotencyConflict, InvalidRequest
from lambdas.domain.idempotency import State
from lambdas.domain.payments import RefundStatus, Status
from lambdas.domain.rules import RuleSet
from lambdas.edge import ApiHandler
from lambdas.gateway import Charge, GatewayRefund, GatewayRejected
from lambdas.handlers.charge import create_payment
from lambdas.handlers.refund import create_refund
from lambdas.ports import Contended, LostRace, PendingItem
from lambdas.routes import Function
from lambdas.service import PaymentService
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.reconcile import GIVE_UP_AFTER, ITEM_SECONDS, OUTCOMES, OVERDUE_AFTER, reconcile
from tests.support.api import assert_error
from tests.support.api_reference import ERROR_CODES
from tests.support.fakes import MERCHANT, FakeLedgerStore, fake_world
from tests.support.fakes_gateway import FakeGateway, Fault
from tests.support.payments import DECLINED_CARD, VISA, captured, card, pay
from tools.api_events import api_event


def counted(**counts: int) -> dict[str, int]:
    """A reconcile run's counts: ``counts``, and zero for every other outcome."""
    return dict.fromkeys((*OUTCOMES, "overdue"), 0) | counts


def ids(failed: GatewayFailed) -> tuple[str, str | None, bool]:
    """What a 502/504 tells the client: the payment, the refund, and whether the outcome is unknown."""
    return failed.payment_id, failed.refund_id, failed.timed_out


def left_pending(world, gateway, fault: Fault, key: str = "k") -> str:
    """A payment that met ``fault`` at the gateway: the id of the payment it left pending."""
    gateway.fail_next("charge", fault)
    with pytest.raises(GatewayFailed) as failed:
        pay(world, key=key)
    return failed.value.payment_id


def lose_refund(world, gateway, payment_id: str, amount: int, key: str, fault: Fault = Fault.LOST) -> str:
    gateway.fail_next("refund", fault)
    with pytest.raises(GatewayFailed) as lost:
        world.service.refund(payment_id, amount, key)
    return lost.value.refund_id


# -- a retry of a refund ---------------------------------------------------------------------------


def test_a_retry_after_a_lost_refund_answer_looks_the_refund_up_and_never_sends_it_again(world, gateway):
    payment_id = captured(world, 1000)
    refund_id = lose_refund(world, gateway, payment_id, 600, "r1")
    answer = world.service.refund(payment_id, 600, "r1")
    assert (answer.status, answer.body["id"]) == (201, refund_id)
    assert (gateway.requests["refund"], gateway.requests["find_refund"]) == (1, 1)


@pytest.mark.parametrize(("fault", "timed_out"), [(Fault.LOST, True), (Fault.UNAVAILABLE, False)])
def test_a_failed_lookup_on_a_refund_retry_names_both_ids_and_leaves_the_key_free(world, gateway, fault, timed_out):
    payment_id = captured(world, 1000)
    refund_id = lose_refund(world, gateway, payment_id, 600, "r1")
    gateway.fail_next("find_refund", fault)
    with pytest.raises(GatewayFailed) as failed:
        world.service.refund(payment_id, 600, "r1")
    assert ids(failed.value) == (payment_id, refund_id, timed_out)
    answer = world.service.refund(payment_id, 600, "r1")  # at once: not a 409 for a key still held
    assert (answer.status, answer.body["id"]) == (201, refund_id)


def test_a_refund_found_with_another_amount_on_a_retry_is_a_502_and_a_later_retry_settles_it(world, gateway):
    payment_id = captured(world, 1000)
    refund_id = lose_refund(world, gateway, payment_id, 600, "r1")

    class _Misreporting(FakeGateway):
        def find_refund(self, reference: str) -> GatewayRefund | None:
            made = gateway.find_refund(reference)
            assert made is not None
            return GatewayRefund(made.id, made.charge_id, made.amount + 1, made.status, made.reference)

    with pytest.raises(GatewayFailed) as failed:
        PaymentService(replace(world.deps, gateway=_Misreporting())).refund(payment_id, 600, "r1")
    assert ids(failed.value) == (payment_id, refund_id, False)
    assert world.ledger.refunds[(payment_id, refund_id)].status is RefundStatus.PENDING
    answer = world.service.refund(payment_id, 600, "r1")
    assert (answer.status, answer.body["id"]) == (201, refund_id)
    assert gateway.requests["refund"] == 1


def test_a_refund_the_gateway_refuses_for_another_reason_than_its_amount_is_a_502_naming_both_ids(world, gateway):
    payment_id = captured(world, 1000)

    class _Refusing(FakeGateway):
        def refund(self, charge_id, amount, reference, idempotency_key) -> GatewayRefund:
            raise GatewayRejected(400, "invalid_request", "No.")

    with pytest.raises(GatewayFailed) as failed:
        PaymentService(replace(world.deps, gateway=_Refusing())).refund(payment_id, 400, "r1")
    refund_id = failed.value.refund_id
    assert refund_id is not None and ids(failed.value) == (payment_id, refund_id, False)
    assert world.ledger.refunds[(payment_id, refund_id)].status is RefundStatus.PENDING


def test_a_refund_given_up_answers_its_key_with_a_final_402_replayed_the_same_and_its_amount_is_free_again(
    world, gateway
):
    """Not the 502 of a gateway that may still answer, which a client retries without end: the refund failed for
    good, and the answer says so once and for all (kept for replays, never a 409 or a 201)."""
    payment_id = captured(world, 1000)
    refund_id = lose_refund(world, gateway, payment_id, 400, "r1", Fault.UNAVAILABLE)
    world.clock.advance(timedelta(hours=2))
    assert world.service.reconcile() == counted(failed=1)  # given up: not "overdue", however old
    first, replay = (world.service.refund(payment_id, 400, "r1", request_id=f"req-{n}") for n in (1, 2))
    error = first.body["error"]
    assert (first.status, error["type"], error["code"]) == (402, "gateway_error", "refund_failed")
    assert (error["payment_id"], error["refund_id"], error["request_id"]) == (payment_id, refund_id, "req-1")
    assert ERROR_CODES["refund_failed"] == ("402", "gateway_error") and "new Idempotency-Key" in error["message"]
    assert not first.replayed and replay.replayed and (replay.status, replay.body) == (first.status, first.body)
    assert world.service.refund(payment_id, 1000, "r2").status == 201
    assert [refund.amount for refund in gateway.refunds()] == [1000]


def test_a_refund_refused_for_its_amount_after_reconciliation_gave_it_up_is_still_a_400(world, gateway):
    """The request outlived its claim: reconciliation gave the refund up (releasing its amount) while the gateway
    was deciding, then the gateway refused the amount. The cancel finds it settled and leaves it alone."""
    payment_id = captured(world, 1000)

    class _RefusingLate(FakeGateway):
        def refund(self, charge_id, amount, reference, idempotency_key) -> GatewayRefund:
            world.clock.advance(timedelta(hours=2))
            assert world.service.reconcile() == counted(failed=1)
            raise GatewayRejected(400, "amount_too_large", "At most 0 can be refunded.")

    with pytest.raises(InvalidRequest) as refused:
        PaymentService(replace(world.deps, gateway=_RefusingLate())).refund(payment_id, 400, "r1")
    assert (refused.value.param, refused.value.code) == ("amount", "amount_too_large")
    assert world.ledger.payments[payment_id].amount_reserved == 0  # released once, by reconciliation
    assert world.service.refund(payment_id, 1000, "r2").status == 201


def test_a_retry_whose_refund_reconciliation_books_first_is_answered_with_that_refund(world, gateway):
    """Reconciliation books the refund between the retry's lookup and the retry's own booking."""
    payment_id = captured(world, 1000)
    refund_id = lose_refund(world, gateway, payment_id, 600, "r1")
    world.clock.advance(timedelta(minutes=2))

    class _ReconciledMeanwhile(FakeGateway):
        def find_refund(self, reference: str) -> GatewayRefund | None:
            assert world.service.reconcile() == counted(settled=1)
            return gateway.find_refund(reference)

    answer = PaymentService(replace(world.deps, gateway=_ReconciledMeanwhile())).refund(payment_id, 600, "r1")
    assert (answer.status, answer.body["id"], answer.body["status"]) == (201, refund_id, "succeeded")
    assert world.service.refund(payment_id, 600, "r1").replayed
    assert world.service.get_payment(payment_id).body["amount_refunded"] == 600
    assert gateway.requests["refund"] == 1


# -- an answer that could not be recorded ------------------------------------------------------------


def failing_commits(store, adds_parts: str, monkeypatch, error: Callable[[], Exception], times: int = 1) -> None:
    """The next ``times`` units of work that ``store.<adds_parts>`` adds to raise ``error()`` instead of committing."""
    add = getattr(store, adds_parts)
    left = [times]

    def adding(uow, *args) -> None:
        add(uow, *args)
        left[0] -= 1
        if not left[0]:
            monkeypatch.setattr(store, adds_parts, add)

        def failing() -> None:
            raise error()

        uow.commit = failing

    monkeypatch.setattr(store, adds_parts, adding)


def contended_once(store, adds_parts: str, monkeypatch) -> None:
    """The next unit of work that ``store.<adds_parts>`` adds to gives up, as ``DynamoUnitOfWork`` does while other
    writers hold its items for longer than its retries last, or near the function's timeout."""
    failing_commits(store, adds_parts, monkeypatch, lambda: Contended("other transactions held its items 5 times"))


# Why a write can fail after the gateway answered: other writers kept its items busy past its retries or its
# time (Contended), or anything else AWS may answer (throttling, a service error).
UNRECORDABLE = [
    pytest.param(lambda: Contended("other transactions held its items 5 times"), id="contended"),
    pytest.param(lambda: RuntimeError("ProvisionedThroughputExceededException"), id="throttled"),
]


@pytest.mark.parametrize("error", UNRECORDABLE)
def test_a_charge_whose_answer_cannot_be_recorded_is_a_504_and_its_retry_books_that_charge(
    world, gateway, monkeypatch, error, captured_logs
):
    failing_commits(world.deps.store, "settle_payment", monkeypatch, error)
    with pytest.raises(GatewayFailed) as failed:
        pay(world, key="k")
    payment_id = failed.value.payment_id
    assert ids(failed.value) == (payment_id, None, True)
    assert [e["payment_id"] for e in captured_logs.errors()] == [payment_id]  # the operator learns which
    assert world.ledger.payments[payment_id].status is Status.PENDING
    answer = pay(world, key="k")  # at once: the key was released
    assert (answer.status, answer.body["id"], answer.body["status"]) == (201, payment_id, "succeeded")
    assert gateway.requests["charge"] == 1


@pytest.mark.parametrize("error", UNRECORDABLE)
def test_a_refund_whose_answer_cannot_be_recorded_is_a_504_and_its_retry_books_that_refund(
    world, gateway, monkeypatch, error, captured_logs
):
    payment_id = captured(world, 1000)
    failing_commits(world.deps.store, "complete_refund", monkeypatch, error)
    with pytest.raises(GatewayFailed) as failed:
        world.service.refund(payment_id, 600, "r1")
    refund_id = failed.value.refund_id
    assert ids(failed.value) == (payment_id, refund_id, True)
    assert [e["refund_id"] for e in captured_logs.errors()] == [refund_id]
    assert world.ledger.refunds[(payment_id, refund_id)].status is RefundStatus.PENDING
    answer = world.service.refund(payment_id, 600, "r1")
    assert (answer.status, answer.body["id"], answer.body["status"]) == (201, refund_id, "succeeded")
    assert gateway.requests["refund"] == 1


@pytest.mark.parametrize("cancel", [False, True], ids=["capture", "cancel"])
@pytest.mark.parametrize("error", UNRECORDABLE)
def test_a_capture_or_cancel_whose_answer_cannot_be_recorded_is_a_504_and_its_retry_books_it_once(
    world, gateway, monkeypatch, error, cancel, captured_logs
):
    payment_id = pay(world, key="a", capture=False).body["id"]
    act = (
        (lambda: world.service.cancel(payment_id, "x"))
        if cancel
        else (lambda: world.service.capture(payment_id, 600, "x"))
    )
    failing_commits(world.deps.store, "settle_action", monkeypatch, error)
    with pytest.raises(GatewayFailed) as failed:
        act()
    assert ids(failed.value) == (payment_id, None, True)
    assert [e["payment_id"] for e in captured_logs.errors()] == [payment_id]
    assert world.ledger.payments[payment_id].status is Status.REQUIRES_CAPTURE
    answer = act()  # at once: the key was released, and the claim kept
    assert (answer.status, answer.body["status"]) == (200, "canceled" if cancel else "succeeded")
    assert (gateway.requests["capture"], gateway.requests["void"]) == ((0, 1) if cancel else (1, 0))


def test_a_capture_whose_claim_cannot_be_written_asks_the_gateway_nothing_and_its_retry_captures(
    world, gateway, monkeypatch
):
    payment_id = pay(world, key="a", capture=False).body["id"]
    contended_once(world.deps.store, "claim_action", monkeypatch)
    with pytest.raises(Contended):
        world.service.capture(payment_id, None, "c")
    stored = world.ledger.payments[payment_id]
    assert (stored.status, stored.action, gateway.requests["capture"]) == (Status.REQUIRES_CAPTURE, None, 0)
    assert world.service.capture(payment_id, None, "c").status == 200


def test_a_claimed_capture_still_unsettled_ten_minutes_after_its_claim_is_counted_overdue(world, gateway):
    payment_id = pay(world, key="a", capture=False).body["id"]
    world.clock.advance(timedelta(hours=1))
    gateway.fail_next("capture", Fault.UNAVAILABLE)
    with pytest.raises(GatewayFailed):
        world.service.capture(payment_id, None, "c")
    gateway.fail_next("find_charge", Fault.UNAVAILABLE)
    assert world.service.reconcile() == counted(errors=1)  # claimed just now: not overdue, whatever its age
    world.clock.advance(OVERDUE_AFTER + timedelta(minutes=1))
    gateway.fail_next("find_charge", Fault.UNAVAILABLE)
    assert world.service.reconcile() == counted(errors=1, overdue=1)
    assert world.service.reconcile() == counted(settled=1)
    assert world.ledger.payments[payment_id].amount_captured == 1000


def test_a_refund_refused_for_its_amount_whose_cancellation_cannot_be_recorded_is_a_502_then_a_400(
    world, gateway, monkeypatch
):
    payment_id = captured(world, 1000)
    world.service.refund(payment_id, 700, "r0")

    class _RefusingAmount(FakeGateway):
        def refund(self, charge_id, amount, reference, idempotency_key) -> GatewayRefund:
            raise GatewayRejected(400, "amount_too_large", "At most 300 can be refunded.")

    refusing = PaymentService(replace(world.deps, gateway=_RefusingAmount()))
    contended_once(world.deps.store, "cancel_refund", monkeypatch)
    with pytest.raises(GatewayFailed) as failed:
        refusing.refund(payment_id, 300, "r1")
    refund_id = failed.value.refund_id
    assert ids(failed.value) == (payment_id, refund_id, False)
    assert world.ledger.refunds[(payment_id, refund_id)].status is RefundStatus.PENDING  # still holding its amount
    with pytest.raises(InvalidRequest) as refused:  # the retry finds no refund, asks again, and is refused again
        refusing.refund(payment_id, 300, "r1")
    assert (refused.value.param, refused.value.code) == ("amount", "amount_too_large")
    assert world.ledger.refunds[(payment_id, refund_id)].status is RefundStatus.FAILED
    assert world.ledger.payments[payment_id].amount_reserved == 0


def test_after_the_gateway_refuses_a_refunds_amount_the_same_key_may_ask_again_at_once(world, gateway):
    """A 400 is no business outcome: it is not kept for replays, and the key is not left held (a 409)."""
    payment_id = captured(world, 1000)

    class _RefusingOnce(FakeGateway):
        refused = False

        def refund(self, charge_id, amount, reference, idempotency_key) -> GatewayRefund:
            if not self.refused:
                self.refused = True
                raise GatewayRejected(400, "amount_too_large", "At most 0 can be refunded.")
            return gateway.refund(charge_id, amount, reference, idempotency_key)

    service = PaymentService(replace(world.deps, gateway=_RefusingOnce()))
    with pytest.raises(InvalidRequest):
        service.refund(payment_id, 400, "r1")
    answer = service.refund(payment_id, 300, "r1")
    assert (answer.status, answer.body["amount"]) == (201, 300)


def test_a_payment_reconciliation_settles_while_its_request_records_it_is_answered_with_its_metadata(world, gateway):
    class _ReconciledMeanwhile(FakeGateway):
        def charge(self, reference, amount, currency, card, idempotency_key, capture=True) -> Charge:
            made = gateway.charge(reference, amount, currency, card, idempotency_key)
            world.clock.advance(timedelta(minutes=2))
            assert world.service.reconcile() == counted(settled=1)  # it finds the charge and books it first
            return made

    service = PaymentService(replace(world.deps, gateway=_ReconciledMeanwhile()))
    command = PaymentCommand(1000, "usd", card=card(VISA), metadata={"order_id": "A-1001"})
    answer = service.create_payment(command, "req", "k")
    assert (answer.status, answer.body["metadata"]) == (201, {"order_id": "A-1001"})
    assert world.service.create_payment(command, "req", "k").replayed  # and kept for replays under its key
    assert gateway.requests["charge"] == 1


def test_reconciliation_that_loses_a_payment_to_its_request_reads_it_again_without_its_metadata(world, gateway):
    """The reconcile function's role may not open payment metadata (_WithoutTheMetadataKey)."""
    command = PaymentCommand(1000, "usd", card=card(), metadata={"order": "A-1"})
    gateway.fail_next("charge", Fault.LOST)
    with pytest.raises(GatewayFailed) as lost:
        world.service.create_payment(command, "req", "k")
    world.clock.advance(timedelta(minutes=2))

    class _RetriedMeanwhile(FakeGateway):
        def find_charge(self, reference: str) -> Charge | None:
            found = gateway.find_charge(reference)
            assert world.service.create_payment(command, "req", "k").status == 201  # the client's retry books it
            return found

    reconciling = replace(world.deps, store=_WithoutTheMetadataKey(world.db, MERCHANT), gateway=_RetriedMeanwhile())
    assert reconcile([reconciling]) == counted(settled=1)
    assert world.ledger.payments[lost.value.payment_id].status is Status.SUCCEEDED


def test_a_reservation_kept_busy_by_other_transactions_is_tried_again_and_made(world, gateway, monkeypatch):
    """DynamoDB cancels transactions that meet on one payment (TransactionConflict): concurrent refunds get a 201
    or a 400, never a 500 because the others kept the payment busy."""
    payment_id = captured(world, 1000)
    failing_commits(world.deps.store, "reserve_refund", monkeypatch, lambda: Contended("held 5 times"), times=3)
    answer = world.service.refund(payment_id, 400, "r1")
    assert (answer.status, answer.body["amount"]) == (201, 400)
    assert gateway.requests["refund"] == 1


def test_a_retry_that_finds_its_payment_settled_answers_it_even_when_its_answer_cannot_be_stored(
    world, gateway, monkeypatch
):
    """The answer is kept for replays on a best-effort basis: the key is freed instead, never left held (a 409 for
    a minute) and never a 500."""
    payment_id = left_pending(world, gateway, Fault.LOST)
    world.clock.advance(timedelta(minutes=2))
    assert world.service.reconcile() == counted(settled=1)
    failing_commits(world.deps.idempotency, "complete", monkeypatch, lambda: Contended("held 5 times"))
    answer = pay(world, key="k")
    assert (answer.status, answer.body["id"]) == (201, payment_id)
    again = pay(world, key="k")  # the key is free: settled again from the payment, not a 409
    assert (again.status, again.body["id"]) == (201, payment_id)
    assert gateway.requests["charge"] == 1


def test_a_reservation_that_keeps_losing_races_to_other_refunds_is_still_made(world, gateway, monkeypatch):
    """Each lost race is another writer's change to the payment (here: what it found still leaves enough)."""
    payment_id = captured(world, 1000)
    found = world.ledger.payments[payment_id]
    failing_commits(world.deps.store, "reserve_refund", monkeypatch, lambda: LostRace({"payment": found}), times=20)
    answer = world.service.refund(payment_id, 400, "r1")
    assert (answer.status, answer.body["amount"]) == (201, 400)
    assert gateway.requests["refund"] == 1


# -- a retry of a payment --------------------------------------------------------------------------


def test_a_decline_booked_by_reconciliation_answers_the_retry_under_the_retrys_request_id(world, gateway):
    command = PaymentCommand(1000, "usd", card=card(DECLINED_CARD))
    gateway.fail_next("charge", Fault.LOST)
    with pytest.raises(GatewayFailed) as lost:
        world.service.create_payment(command, "req-first", "k")
    world.clock.advance(timedelta(minutes=2))
    assert world.service.reconcile() == counted(settled=1)
    answer = world.service.create_payment(command, "req-retry", "k")
    assert answer.status == 402
    assert (answer.body["error"]["payment_id"], answer.body["error"]["request_id"]) == (
        lost.value.payment_id,
        "req-retry",
    )


def test_a_retry_of_a_lost_payment_settles_it_even_when_the_velocity_limit_is_reached(gateway):
    """The first attempt used the card's only payment of the hour; its retry is that payment, not a new one."""
    world = fake_world(gateway, RuleSet(velocity_per_hour=1))
    payment_id = left_pending(world, gateway, Fault.LOST)
    answer = pay(world, key="k")
    assert (answer.status, answer.body["id"], answer.body["status"]) == (201, payment_id, "succeeded")
    assert len(gateway.charges()) == 1
    assert pay(world, key="another").status == 402  # a second payment of the hour is still refused


@pytest.mark.parametrize(
    ("number", "fault", "status"),
    [(VISA, Fault.LOST, 201), (VISA, Fault.UNAVAILABLE, 201), (DECLINED_CARD, Fault.UNAVAILABLE, 402)],
)
def test_a_retry_of_a_pending_payment_settles_it_even_if_a_rule_now_refuses_it(world, gateway, number, fault, status):
    """The payment was asked for before the rule changed: the retry finishes it (finding the charge, or making it
    with the card it was given) and answers with that outcome, under its own request id; the answer is stored."""
    command = PaymentCommand(1000, "usd", card=card(number))
    gateway.fail_next("charge", fault)
    with pytest.raises(GatewayFailed) as failed:
        world.service.create_payment(command, "req-first", "k")
    stricter = PaymentService(replace(world.deps, rules=RuleSet(max_amount={"USD": 500})))
    answer = stricter.create_payment(command, "req-retry", "k")
    assert answer.status == status
    payment = world.ledger.payments[failed.value.payment_id]
    assert payment.status is (Status.SUCCEEDED if status == 201 else Status.DECLINED)
    if status == 402:
        assert answer.body["error"]["request_id"] == "req-retry"
    assert stricter.create_payment(command, "req-third", "k").replayed
    assert len(gateway.charges()) == 1


@pytest.mark.parametrize("fault", [Fault.LOST, Fault.UNAVAILABLE])
def test_a_decline_settled_by_the_retry_is_answered_under_its_request_id_and_stored_for_replays(world, gateway, fault):
    """LOST: the retry finds the declined charge; UNAVAILABLE: the charge never arrived, and the retry makes it."""
    command = PaymentCommand(1000, "usd", card=card(DECLINED_CARD))
    gateway.fail_next("charge", fault)
    with pytest.raises(GatewayFailed) as failed:
        world.service.create_payment(command, "req-first", "k")
    answer = world.service.create_payment(command, "req-retry", "k")
    assert (answer.status, answer.body["error"]["request_id"]) == (402, "req-retry")
    assert answer.body["error"]["payment_id"] == failed.value.payment_id
    assert world.service.create_payment(command, "req-third", "k").replayed
    assert gateway.requests["charge"] == (1 if fault is Fault.LOST else 2)


def test_a_charge_found_with_another_amount_on_a_retry_is_a_502_and_a_later_retry_settles_it(world, gateway):
    payment_id = left_pending(world, gateway, Fault.LOST)

    class _Misreporting(FakeGateway):
        def find_charge(self, reference: str) -> Charge | None:
            found = gateway.find_charge(reference)
            assert found is not None
            return replace(found, amount=found.amount + 1)

    misreported = PaymentService(replace(world.deps, gateway=_Misreporting()))
    with pytest.raises(GatewayFailed) as failed:
        misreported.create_payment(PaymentCommand(1000, "usd", card=card()), "req", "k")
    assert ids(failed.value) == (payment_id, None, False)
    answer = pay(world, key="k")  # at once: the key was freed
    assert (answer.status, answer.body["id"], answer.body["status"]) == (201, payment_id, "succeeded")
    assert gateway.requests["charge"] == 1


def test_a_retry_naming_its_metadata_in_another_order_is_the_same_request(world):
    first = pay(world, key="k", metadata={"order": "A-1", "customer": "c-42"})
    again = pay(world, key="k", metadata={"customer": "c-42", "order": "A-1"})
    assert again.replayed and again.body["id"] == first.body["id"]


def test_a_key_declined_by_the_velocity_rule_refuses_another_body(gateway):
    world = fake_world(gateway, RuleSet(velocity_per_hour=1))
    assert pay(world, key="first").status == 201
    assert pay(world, key="k").status == 402
    with pytest.raises(IdempotencyConflict) as conflict:
        pay(world, key="k", amount=2000)
    assert conflict.value.status == 422


# -- what reconciliation touches and counts --------------------------------------------------------


def test_reconciliation_leaves_items_younger_than_settle_after_alone(world, gateway):
    payment_id = left_pending(world, gateway, Fault.LOST)
    world.clock.advance(timedelta(seconds=30))
    assert world.service.reconcile() == counted()
    assert gateway.requests["find_charge"] == 0
    assert world.ledger.payments[payment_id].status is Status.PENDING


def test_items_settled_or_given_up_are_not_overdue_however_old(world, gateway):
    left_pending(world, gateway, Fault.LOST, key="charged")
    left_pending(world, gateway, Fault.UNAVAILABLE, key="never-charged")
    world.clock.advance(timedelta(hours=2))
    assert world.service.reconcile() == counted(settled=1, failed=1)


def test_an_item_is_overdue_once_pending_longer_than_overdue_after(world, gateway):
    left_pending(world, gateway, Fault.UNAVAILABLE)
    world.clock.advance(OVERDUE_AFTER)
    assert world.service.reconcile() == counted(still_pending=1)
    world.clock.advance(timedelta(seconds=1))
    assert world.service.reconcile() == counted(still_pending=1, overdue=1)


def test_a_payment_is_given_up_exactly_when_give_up_after_has_passed_and_not_before(world, gateway):
    payment_id = left_pending(world, gateway, Fault.UNAVAILABLE)
    world.clock.advance(GIVE_UP_AFTER - timedelta(seconds=1))
    assert world.service.reconcile() == counted(still_pending=1, overdue=1)
    world.clock.advance(timedelta(seconds=1))
    assert world.service.reconcile() == counted(failed=1)
    assert world.ledger.payments[payment_id].status is Status.FAILED


def test_a_refund_is_given_up_exactly_when_give_up_after_has_passed_and_not_before(world, gateway):
    payment_id = captured(world, 1000)
    refund_id = lose_refund(world, gateway, payment_id, 400, "r1", Fault.UNAVAILABLE)
    world.clock.advance(GIVE_UP_AFTER - timedelta(seconds=1))
    assert world.service.reconcile() == counted(still_pending=1, overdue=1)
    world.clock.advance(timedelta(seconds=1))
    assert world.service.reconcile() == counted(failed=1)
    assert world.ledger.refunds[(payment_id, refund_id)].status is RefundStatus.FAILED


def test_reconciliation_never_gives_up_a_refund_whose_key_a_request_holds(world, gateway):
    payment_id = captured(world, 1000)
    refund_id = lose_refund(world, gateway, payment_id, 400, "r1", Fault.UNAVAILABLE)
    world.clock.advance(timedelta(hours=2))
    key = world.ledger.refunds[(payment_id, refund_id)].idempotency_id
    world.db.records[key] = replace(
        world.db.records[key], state=State.IN_PROGRESS, in_flight_until=int(world.clock.epoch()) + 30
    )  # a retry is settling it now
    assert world.service.reconcile() == counted(still_pending=1, overdue=1)
    assert world.ledger.refunds[(payment_id, refund_id)].status is RefundStatus.PENDING


def test_items_the_index_still_lists_after_they_settled_are_counted_settled_and_left_alone(world, gateway):
    """The status index is eventually consistent: it may list what settled a moment ago, or what is gone."""
    payment_id = captured(world, 1000)
    refund_id = world.service.refund(payment_id, 300, "r1").body["id"]
    created = world.ledger.payments[payment_id].created_at
    listed = [
        PendingItem(payment_id, created),
        PendingItem(payment_id, created, refund_id),
        PendingItem(payment_id, created, "re_gone"),
        PendingItem("pay_gone", created),
        PendingItem("pay_gone", created, "re_gone"),
    ]
    world.deps.store.pending = lambda created_before: iter(listed)
    world.clock.advance(timedelta(hours=2))
    asked = Counter(gateway.requests)
    assert world.service.reconcile() == counted(settled=len(listed))
    assert gateway.requests == asked


def test_near_its_deadline_a_run_defers_every_item_to_the_next_run(world, gateway, monkeypatch):
    payment_id = left_pending(world, gateway, Fault.LOST)
    world.clock.advance(timedelta(minutes=20))
    monkeypatch.setattr(deadline, "remaining", lambda: 0.5)
    assert world.service.reconcile() == counted(deferred=1, overdue=1)
    assert world.ledger.payments[payment_id].status is Status.PENDING


def test_with_exactly_the_time_an_item_may_take_a_run_still_starts_it(world, gateway, monkeypatch):
    payment_id = left_pending(world, gateway, Fault.LOST)
    world.clock.advance(timedelta(minutes=2))
    monkeypatch.setattr(deadline, "remaining", lambda: ITEM_SECONDS)
    assert world.service.reconcile() == counted(settled=1)
    assert world.ledger.payments[payment_id].status is Status.SUCCEEDED


class _WithoutTheMetadataKey(FakeLedgerStore):
    """The store as the reconcile function's role has it: no kms:Decrypt for payment metadata (only the charge and
    read functions may open it), so reading a payment's metadata is refused."""

    def get_payment(self, payment_id, with_metadata=True, to_book=False):
        payment = super().get_payment(payment_id, with_metadata, to_book)
        if with_metadata and payment is not None and payment.metadata:
            raise PermissionError("kms:Decrypt is not allowed for payment-metadata")
        return payment


def test_reconciliation_settles_payments_and_refunds_carrying_metadata_without_the_metadata_key(world, gateway):
    command = PaymentCommand(1000, "usd", card=card(), metadata={"order": "A-1"})
    paid = world.service.create_payment(command, "req", "paid").body["id"]
    refund_id = lose_refund(world, gateway, paid, 400, "r1")
    gateway.fail_next("charge", Fault.LOST)
    with pytest.raises(GatewayFailed) as lost:
        world.service.create_payment(command, "req", "lost")
    world.clock.advance(timedelta(minutes=2))
    reconciling = replace(world.deps, store=_WithoutTheMetadataKey(world.db, MERCHANT))
    assert reconcile([reconciling]) == counted(settled=2)
    assert world.ledger.payments[lost.value.payment_id].status is Status.SUCCEEDED
    assert world.ledger.refunds[(paid, refund_id)].status is RefundStatus.SUCCEEDED


class _Unlisted(FakeLedgerStore):
    def pending(self, created_before):
        raise ConnectionError("the status index did not answer")


def test_merchants_whose_listing_fails_are_each_counted_and_logged_and_the_others_are_settled(
    world, gateway, captured_logs
):
    left_pending(world, gateway, Fault.LOST)
    world.clock.advance(timedelta(minutes=2))
    unlisted = [replace(world.deps, store=_Unlisted(world.db, merchant)) for merchant in ("m-1", "m-2")]
    assert reconcile([*unlisted, world.deps]) == counted(settled=1, errors=2)
    assert [record["message"] for record in captured_logs.errors()] == ["reconcile listing failed"] * 2


def test_an_items_failure_is_logged_with_the_payment_and_refund_it_concerns(world, gateway, captured_logs):
    payment_id = captured(world, 1000)
    refund_id = lose_refund(world, gateway, payment_id, 400, "r1")
    world.clock.advance(timedelta(minutes=2))
    gateway.fail_next("find_refund", Fault.GARBAGE)
    assert world.service.reconcile() == counted(errors=1)
    assert [(e["message"], e["payment_id"], e["refund_id"]) for e in captured_logs.errors()] == [
        ("reconcile item failed", payment_id, refund_id)
    ]


def test_a_refund_kept_busy_by_other_transactions_reads_the_payment_again_without_its_metadata(world, monkeypatch):
    """The refund function's role may not open payment metadata: reading the payment again after a contended
    reservation must not ask for it."""
    command = PaymentCommand(1000, "usd", card=card(), metadata={"order": "A-1"})
    paid = world.service.create_payment(command, "req", "paid").body["id"]
    refunding = replace(world.deps, store=_WithoutTheMetadataKey(world.db, MERCHANT))
    failing_commits(refunding.store, "reserve_refund", monkeypatch, lambda: Contended("held 5 times"))
    answer = PaymentService(refunding).refund(paid, 400, "r1")
    assert (answer.status, answer.body["amount"]) == (201, 400)


def test_a_booked_refund_keeps_the_gateways_id_for_it(world, gateway):
    """What ties the ledger's refund to the gateway's (an operator squaring the two, a dispute)."""
    payment_id = captured(world, 1000)
    refund_id = world.service.refund(payment_id, 400, "r1").body["id"]
    made = gateway.find_refund(refund_id)
    assert made is not None and world.ledger.refunds[(payment_id, refund_id)].gateway_refund_id == made.id


def test_over_http_what_was_given_up_is_the_documented_402_and_its_replay_says_so(world, gateway):
    """Through the handlers' edge: the status, type and code as docs/api.md lists them, and the replay's header."""
    serve = {
        Function.CHARGE: ApiHandler(Function.CHARGE, {"POST /payments": create_payment}, lambda: world.tenancy),
        Function.REFUND: ApiHandler(
            Function.REFUND, {"POST /payments/{id}/refunds": create_refund}, lambda: world.tenancy
        ),
    }

    def post(function: Function, path: str, body: dict, request_id: str) -> dict:
        event = api_event("POST", path, body, headers={"Idempotency-Key": "k"}, request_id=request_id)
        return serve[function](event, None)

    card_body = {"number": VISA, "exp_month": 12, "exp_year": 2030, "cvc": "737"}
    payment = {"amount": 1000, "currency": "usd", "source": {"card": card_body}}
    gateway.fail_next("charge", Fault.UNAVAILABLE)
    payment_id = assert_error(post(Function.CHARGE, "/payments", payment, "req-1"), 502, "gateway_error")["payment_id"]
    refunds = f"/payments/{captured(world, 1000)}/refunds"
    gateway.fail_next("refund", Fault.UNAVAILABLE)
    lost_refund = post(Function.REFUND, refunds, {"amount": 400}, "req-2")
    refund_id = assert_error(lost_refund, 502, "gateway_error")["refund_id"]
    world.clock.advance(timedelta(hours=2))
    assert world.service.reconcile() == counted(failed=2)
    for function, path, body, code, named in (
        (Function.CHARGE, "/payments", payment, "payment_failed", payment_id),
        (Function.REFUND, refunds, {"amount": 400}, "refund_failed", refund_id),
    ):
        first, replay = post(function, path, body, "req-3"), post(function, path, body, "req-4")
        error = assert_error(first, 402, "gateway_error")
        assert error["code"] == code and error.get("refund_id", error["payment_id"]) == named
        assert error["request_id"] == "req-3" and "Idempotent-Replayed" not in first["headers"]
        assert replay["headers"].get("Idempotent-Replayed") == "true" and replay["body"] == first["body"]
