"""Authorise, then capture, on in-memory fakes: holds that balance and are released in full, a capture or cancel
made exactly once (also when they race, or when the gateway's answer is lost), refusals that write nothing, and
authorisations that expire. Each test names the break it guards against."""

import threading
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from lambdas.domain.errors import GatewayFailed, IdempotencyConflict, InvalidRequest, NotFound
from lambdas.domain.payments import (
    AUTHORIZATION_VALIDITY,
    HOLD,
    HOLD_OFFSET,
    MERCHANT,
    RECEIVABLE,
    CancellationReason,
    Direction,
    Status,
    balance,
)
from lambdas.domain.rules import RuleSet
from lambdas.domain.timestamps import iso
from lambdas.edge import ApiHandler
from lambdas.gateway import GatewayRejected
from lambdas.handlers.capture import cancel_payment, capture_payment
from lambdas.routes import Function
from lambdas.use_cases.payments import PaymentCommand
from sparkle_sandbox.server import AUTHORIZATION_SECONDS
from tests.support.api import assert_error
from tests.support.fakes import fake_world
from tests.support.fakes_gateway import FakeGateway, Fault
from tests.support.payments import DECLINED_CARD, captured, card, pay
from tools.api_events import api_event

PAST_EXPIRY = AUTHORIZATION_VALIDITY + timedelta(seconds=1)


def authorized(world, amount: int = 1000, key: str | None = None) -> str:
    """The id of a new authorisation of ``amount``."""
    answer = pay(world, key=key or f"auth-{len(world.ledger.payments)}", amount=amount, capture=False)
    assert (answer.status, answer.body["status"]) == (201, "requires_capture"), answer.body
    return answer.body["id"]


def net(world, payment_id: str) -> dict[str, int]:
    """The payment's entries, debits less credits per account, without the accounts that net to zero."""
    return {account: total for account, total in balance(world.ledger.entries.get(payment_id, [])).items() if total}


def the_charge(world, gateway, payment_id: str):
    return gateway.charge_by_id(world.ledger.payments[payment_id].charge_id)


def gateway_calls(gateway) -> tuple[int, int]:
    return gateway.requests["capture"], gateway.requests["void"]


def refused(call) -> tuple[str | None, str]:
    """The 400 a call is refused with: its param and code."""
    with pytest.raises(InvalidRequest) as refusal:
        call()
    return refusal.value.param, refusal.value.code


# -- authorise -------------------------------------------------------------------------------------------


def test_an_authorisation_requires_capture_for_seven_days_and_books_a_balanced_hold(world, gateway):
    payment_id = authorized(world, 1500)
    shown = world.service.get_payment(payment_id).body
    created = world.ledger.payments[payment_id].created_at
    assert (shown["status"], shown["amount_capturable"], shown["amount_captured"]) == ("requires_capture", 1500, 0)
    assert shown["capture_before"] == iso(created + timedelta(days=7))
    entries = [(e.account, e.direction, e.amount) for e in world.ledger.entries[payment_id]]
    assert entries == [(HOLD, Direction.DEBIT, 1500), (HOLD_OFFSET, Direction.CREDIT, 1500)]
    balances = {b["account"]: b["amount"] for b in world.service.balances().body["balances"]}
    assert balances == {HOLD: 1500, HOLD_OFFSET: -1500}
    charge = the_charge(world, gateway, payment_id)
    assert (charge.status, charge.amount_capturable, charge.amount_captured) == ("authorized", 1500, 0)


def test_a_plain_charge_shows_no_capture_deadline_and_all_of_it_captured(world):
    shown = world.service.get_payment(captured(world, 700)).body
    assert (shown["amount_captured"], shown["amount_capturable"]) == (700, 0)
    assert "capture_before" not in shown and "cancellation_reason" not in shown


def test_the_velocity_rule_counts_authorisations_and_declines_one_over_it(gateway):
    world = fake_world(gateway, RuleSet(velocity_per_hour=2))
    authorized(world, key="a1")
    pay(world, key="c1")  # a charge with the same card counts too
    blocked = pay(world, key="a2", capture=False)
    assert (blocked.status, blocked.body["error"]["decline_code"]) == (402, "rule_blocked")
    assert world.ledger.payments[blocked.body["error"]["payment_id"]].status is Status.DECLINED
    assert len(gateway.charges()) == 2


def test_a_rule_blocks_an_authorisation_before_the_gateway_is_asked(gateway):
    world = fake_world(gateway, RuleSet(max_amount={"USD": 500}))
    blocked = pay(world, key="a", amount=501, capture=False)
    assert (blocked.status, blocked.body["error"]["decline_code"]) == (402, "rule_blocked")
    assert gateway.charges() == [] and world.ledger.entries == {}


def test_a_declined_authorisation_holds_nothing(world):
    declined = pay(world, key="a", number=DECLINED_CARD, capture=False)
    assert declined.status == 402
    payment_id = declined.body["error"]["payment_id"]
    assert world.ledger.payments[payment_id].status is Status.DECLINED
    assert payment_id not in world.ledger.entries


def test_an_authorisation_and_a_charge_with_one_key_are_different_bodies(world):
    authorized(world, key="k")
    with pytest.raises(IdempotencyConflict) as conflict:
        pay(world, key="k")
    assert conflict.value.status == 422


# -- capture ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "captured_amount"), [(None, 1000), (1000, 1000), (400, 400), (1, 1)])
def test_a_capture_releases_the_whole_hold_and_books_what_it_captured_once(world, gateway, asked, captured_amount):
    payment_id = authorized(world, 1000)
    answer = world.service.capture(payment_id, asked, "c1")
    body = answer.body
    assert (answer.status, body["status"], body["amount_captured"], body["amount_capturable"]) == (
        200, "succeeded", captured_amount, 0
    )  # fmt: skip
    assert net(world, payment_id) == {RECEIVABLE: captured_amount, MERCHANT: -captured_amount}
    assert len(world.ledger.entries[payment_id]) == 6  # hold, its reversal, the charge
    charge = the_charge(world, gateway, payment_id)
    assert (charge.status, charge.amount_captured) == ("succeeded", captured_amount)
    assert gateway_calls(gateway) == (1, 0)
    assert world.service.get_payment(payment_id).body == body


def test_a_partial_capture_can_be_refunded_up_to_what_was_captured_and_no_more(world, gateway):
    payment_id = authorized(world, 1000)
    world.service.capture(payment_id, 600, "c1")
    assert refused(lambda: world.service.refund(payment_id, 601, "r1")) == ("amount", "amount_too_large")
    assert world.service.refund(payment_id, None, "r2").body["amount"] == 600  # the default: all that is left
    shown = world.service.get_payment(payment_id).body
    assert (shown["status"], shown["amount_refunded"]) == ("refunded", 600)
    assert net(world, payment_id) == {}
    assert gateway.refunded_total(world.ledger.payments[payment_id].charge_id) == 600


def test_a_partly_refunded_partial_capture_shows_partially_refunded(world):
    payment_id = authorized(world, 1000)
    world.service.capture(payment_id, 600, "c1")
    world.service.refund(payment_id, 599, "r1")
    assert world.service.get_payment(payment_id).body["status"] == "partially_refunded"


def test_an_authorisation_cannot_be_refunded_before_it_is_captured(world, gateway):
    payment_id = authorized(world, 1000)
    assert refused(lambda: world.service.refund(payment_id, 100, "r1"))[0] == "amount"
    assert gateway.refunds() == []


# -- cancel ----------------------------------------------------------------------------------------------


def test_a_cancel_voids_the_authorisation_and_releases_its_hold(world, gateway):
    payment_id = authorized(world, 1000)
    answer = world.service.cancel(payment_id, "x1")
    body = answer.body
    assert (answer.status, body["status"], body["cancellation_reason"], body["amount_capturable"]) == (
        200, "canceled", "requested_by_customer", 0
    )  # fmt: skip
    assert body["amount_captured"] == 0
    assert net(world, payment_id) == {} and len(world.ledger.entries[payment_id]) == 4
    assert the_charge(world, gateway, payment_id).status == "voided"
    assert gateway_calls(gateway) == (0, 1)


# -- refusals: the right code, nothing written, nothing asked -------------------------------------------


def _charged(world) -> str:
    return captured(world, 1000)


def _declined(world) -> str:
    return pay(world, key="d", number=DECLINED_CARD, capture=False).body["error"]["payment_id"]


def _canceled(world) -> str:
    payment_id = authorized(world)
    world.service.cancel(payment_id, "earlier")
    return payment_id


def _captured(world) -> str:
    payment_id = authorized(world)
    world.service.capture(payment_id, 500, "earlier")
    return payment_id


@pytest.mark.parametrize("made", [_charged, _declined, _canceled, _captured])
@pytest.mark.parametrize(
    ("act", "code"),
    [
        (lambda service, payment_id: service.capture(payment_id, None, "k"), "payment_not_capturable"),
        (lambda service, payment_id: service.capture(payment_id, 1, "k"), "payment_not_capturable"),
        (lambda service, payment_id: service.cancel(payment_id, "k"), "payment_not_cancelable"),
    ],
    ids=["capture", "capture 1", "cancel"],
)
def test_only_an_authorisation_can_be_captured_or_cancelled_and_a_refusal_writes_nothing(
    world, gateway, made, act, code
):
    payment_id = made(world)
    before = (world.ledger.payments[payment_id], world.ledger.entries.get(payment_id), dict(world.db.records))
    calls = gateway_calls(gateway)
    assert refused(lambda: act(world.service, payment_id)) == (None, code)
    assert (world.ledger.payments[payment_id], world.ledger.entries.get(payment_id), world.db.records) == before
    assert gateway_calls(gateway) == calls
    assert refused(lambda: act(world.service, payment_id)) == (None, code)  # the key kept nothing: the same again


@pytest.mark.parametrize("amount", [1001, 99_999_999])
def test_a_capture_of_more_than_is_capturable_is_refused_and_writes_nothing(world, gateway, amount):
    payment_id = authorized(world, 1000)
    before = (world.ledger.payments[payment_id], list(world.ledger.entries[payment_id]), dict(world.db.records))
    assert refused(lambda: world.service.capture(payment_id, amount, "c1")) == ("amount", "amount_too_large")
    assert (world.ledger.payments[payment_id], world.ledger.entries[payment_id], world.db.records) == before
    assert gateway_calls(gateway) == (0, 0)
    assert world.service.capture(payment_id, 1000, "c2").status == 200


@pytest.mark.parametrize("amount", [0, -1])
def test_a_capture_amount_that_is_not_positive_is_refused_naming_amount(world, gateway, amount):
    payment_id = authorized(world, 1000)
    assert refused(lambda: world.service.capture(payment_id, amount, "c1"))[0] == "amount"
    assert world.ledger.payments[payment_id].status is Status.REQUIRES_CAPTURE and gateway_calls(gateway) == (0, 0)


def test_capturing_or_cancelling_an_unknown_payment_is_a_404(world):
    with pytest.raises(NotFound):
        world.service.capture("pay_unknown", None, "c1")
    with pytest.raises(NotFound):
        world.service.cancel("pay_unknown", "x1")


def test_another_merchants_authorisation_is_not_found(world, gateway):
    payment_id = authorized(world)
    with pytest.raises(NotFound):
        world.other().capture(payment_id, None, "c1")
    assert world.ledger.payments[payment_id].status is Status.REQUIRES_CAPTURE and gateway_calls(gateway) == (0, 0)


# -- races: exactly one wins ------------------------------------------------------------------------------


def race(*calls) -> list:
    """Each call's answer or 400, all started at once."""
    barrier, outcomes = threading.Barrier(len(calls)), [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = calls[n]().status
        except InvalidRequest as refusal:
            outcomes[n] = refusal.code

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_of_a_capture_and_a_cancel_racing_exactly_one_wins_and_only_it_reaches_the_gateway(world, gateway):
    wins = Counter()
    for n in range(20):
        payment_id = authorized(world)
        outcomes = race(
            lambda p=payment_id, n=n: world.service.capture(p, None, f"c{n}"),
            lambda p=payment_id, n=n: world.service.cancel(p, f"x{n}"),
        )
        assert outcomes in ([200, "payment_not_cancelable"], ["payment_not_capturable", 200])  # each its own code
        winner = "capture" if outcomes[0] == 200 else "cancel"
        wins[winner] += 1
        status = world.ledger.payments[payment_id].status
        assert status is (Status.SUCCEEDED if winner == "capture" else Status.CANCELED)
        assert the_charge(world, gateway, payment_id).status == ("succeeded" if winner == "capture" else "voided")
        assert net(world, payment_id) == ({RECEIVABLE: 1000, MERCHANT: -1000} if winner == "capture" else {})
    assert sum(gateway_calls(gateway)) == 20


def test_of_two_captures_with_different_keys_one_captures_and_the_other_is_refused(world, gateway):
    for n in range(10):
        payment_id = authorized(world)
        outcomes = race(
            lambda p=payment_id, n=n: world.service.capture(p, 300, f"a{n}"),
            lambda p=payment_id, n=n: world.service.capture(p, 700, f"b{n}"),
        )
        assert sorted(outcomes, key=str) == [200, "payment_not_capturable"]
        captured_amount = 300 if outcomes[0] == 200 else 700
        assert world.ledger.payments[payment_id].amount_captured == captured_amount
        assert the_charge(world, gateway, payment_id).amount_captured == captured_amount
    assert gateway_calls(gateway) == (10, 0)


# -- lost answers: settled by a retry or by reconciliation, never done twice --------------------------------


def lose(world, gateway, operation: str, call, fault: Fault = Fault.LOST) -> GatewayFailed:
    gateway.fail_next(operation, fault)
    with pytest.raises(GatewayFailed) as failed:
        call()
    return failed.value


def test_a_lost_capture_answer_is_a_504_naming_the_payment_which_still_requires_capture(world, gateway):
    payment_id = authorized(world)
    failed = lose(world, gateway, "capture", lambda: world.service.capture(payment_id, 400, "c1"))
    assert (failed.payment_id, failed.timed_out, failed.refund_id) == (payment_id, True, None)
    shown = world.service.get_payment(payment_id).body
    assert (shown["status"], shown["amount_captured"]) == ("requires_capture", 0)
    assert net(world, payment_id) == {HOLD: 1000, HOLD_OFFSET: -1000}  # nothing booked while it is unknown


def test_a_retry_after_a_lost_capture_answer_books_the_capture_without_capturing_again(world, gateway):
    payment_id = authorized(world)
    lose(world, gateway, "capture", lambda: world.service.capture(payment_id, 400, "c1"))
    answer = world.service.capture(payment_id, 400, "c1")
    assert (answer.status, answer.body["status"], answer.body["amount_captured"], answer.replayed) == (
        200, "succeeded", 400, False
    )  # fmt: skip
    assert world.service.capture(payment_id, 400, "c1").replayed
    assert gateway_calls(gateway) == (1, 0) and the_charge(world, gateway, payment_id).amount_captured == 400
    assert net(world, payment_id) == {RECEIVABLE: 400, MERCHANT: -400}


@pytest.mark.parametrize("fault", [Fault.UNAVAILABLE, Fault.GARBAGE, Fault.SLOW])
def test_a_retry_after_a_failed_capture_captures_once(world, gateway, fault):
    payment_id = authorized(world)
    failed = lose(world, gateway, "capture", lambda: world.service.capture(payment_id, 400, "c1"), fault)
    assert failed.payment_id == payment_id
    gateway.complete_slow_calls()
    answer = world.service.capture(payment_id, 400, "c1")
    assert (answer.status, answer.body["amount_captured"]) == (200, 400)
    assert the_charge(world, gateway, payment_id).amount_captured == 400
    assert net(world, payment_id) == {RECEIVABLE: 400, MERCHANT: -400}


def test_reconciliation_books_a_capture_whose_answer_was_lost_and_the_retry_is_answered_with_it(world, gateway):
    payment_id = authorized(world)
    world.clock.advance(timedelta(hours=1))
    lose(world, gateway, "capture", lambda: world.service.capture(payment_id, 400, "c1"))
    assert world.service.reconcile(settle_after=timedelta(0))["settled"] == 1
    assert world.ledger.payments[payment_id].status is Status.SUCCEEDED
    assert net(world, payment_id) == {RECEIVABLE: 400, MERCHANT: -400}
    answer = world.service.capture(payment_id, 400, "c1")
    assert (answer.status, answer.body["amount_captured"]) == (200, 400)
    assert world.service.capture(payment_id, 400, "c1").replayed
    assert gateway_calls(gateway) == (1, 0)


def test_reconciliation_asks_again_for_a_capture_that_never_reached_the_gateway_only_once_it_is_due(world, gateway):
    payment_id = authorized(world)
    world.clock.advance(timedelta(hours=1))  # an authorisation captured later: its capture is what is due, or not
    lose(world, gateway, "capture", lambda: world.service.capture(payment_id, 400, "c1"), Fault.UNAVAILABLE)
    assert world.service.reconcile()["still_pending"] == 1  # its request may still be asking
    assert gateway_calls(gateway) == (1, 0)
    world.clock.advance(timedelta(minutes=2))
    assert world.service.reconcile()["settled"] == 1
    assert the_charge(world, gateway, payment_id).amount_captured == 400
    assert world.ledger.payments[payment_id].amount_captured == 400


def test_a_lost_void_answer_is_settled_by_reconciliation(world, gateway):
    payment_id = authorized(world)
    failed = lose(world, gateway, "void", lambda: world.service.cancel(payment_id, "x1"))
    assert (failed.payment_id, failed.timed_out) == (payment_id, True)
    assert world.ledger.payments[payment_id].status is Status.REQUIRES_CAPTURE
    world.clock.advance(timedelta(minutes=2))
    assert world.service.reconcile()["settled"] == 1
    payment = world.ledger.payments[payment_id]
    assert (payment.status, payment.cancellation_reason) == (Status.CANCELED, CancellationReason.REQUESTED_BY_CUSTOMER)
    assert net(world, payment_id) == {} and gateway_calls(gateway) == (0, 1)
    answer = world.service.cancel(payment_id, "x1")
    assert (answer.status, answer.body["status"]) == (200, "canceled")


def test_while_a_capture_answer_is_lost_a_cancel_or_another_capture_is_refused(world, gateway):
    payment_id = authorized(world)
    lose(world, gateway, "capture", lambda: world.service.capture(payment_id, 400, "c1"))
    assert refused(lambda: world.service.cancel(payment_id, "x1")) == (None, "payment_not_cancelable")
    assert refused(lambda: world.service.capture(payment_id, 400, "c2")) == (None, "payment_not_capturable")
    assert gateway_calls(gateway) == (1, 0)
    assert world.service.capture(payment_id, 400, "c1").status == 200


def test_a_failed_lookup_on_a_capture_retry_is_a_gateway_error_and_the_next_retry_settles(world, gateway):
    payment_id = authorized(world)
    lose(world, gateway, "capture", lambda: world.service.capture(payment_id, 400, "c1"))
    failed = lose(world, gateway, "find_charge", lambda: world.service.capture(payment_id, 400, "c1"))
    assert failed.payment_id == payment_id
    assert world.service.capture(payment_id, 400, "c1").status == 200
    assert gateway_calls(gateway) == (1, 0)


# -- idempotency ------------------------------------------------------------------------------------------


def test_a_capture_key_replays_its_answer_and_refuses_another_amount(world, gateway):
    payment_id = authorized(world)
    first = world.service.capture(payment_id, 400, "c1")
    again = world.service.capture(payment_id, 400, "c1")
    assert again.replayed and (again.status, again.body) == (first.status, first.body)
    with pytest.raises(IdempotencyConflict) as conflict:
        world.service.capture(payment_id, 500, "c1")
    assert conflict.value.status == 422
    with pytest.raises(IdempotencyConflict):
        world.service.capture(payment_id, None, "c1")  # all of it is another body than 400
    assert gateway_calls(gateway) == (1, 0)


def test_a_cancel_key_replays_its_answer(world, gateway):
    payment_id = authorized(world)
    first = world.service.cancel(payment_id, "x1")
    again = world.service.cancel(payment_id, "x1")
    assert again.replayed and (again.status, again.body) == (first.status, first.body)
    assert gateway_calls(gateway) == (0, 1)


def edge(world):
    """POST through the capture function's handler, as API Gateway calls it."""
    handler = ApiHandler(
        Function.CAPTURE,
        {"POST /payments/{id}/capture": capture_payment, "POST /payments/{id}/cancel": cancel_payment},
        lambda: world.tenancy,
    )

    def post(path: str, body: dict, key: str | None = "k") -> dict:
        headers = {"Idempotency-Key": key} if key else {}
        return handler(api_event("POST", path, body, headers=headers, request_id="req-1"), None)

    return post


def test_over_http_a_capture_is_200_and_its_replay_says_so(world):
    post = edge(world)
    payment_id = authorized(world)
    first, replay = (
        post(f"/payments/{payment_id}/capture", {"amount": 300}),
        post(f"/payments/{payment_id}/capture", {"amount": 300}),
    )
    assert first["statusCode"] == 200 and "Idempotent-Replayed" not in first["headers"]
    assert replay["headers"].get("Idempotent-Replayed") == "true" and replay["body"] == first["body"]


def test_over_http_a_key_is_scoped_to_its_route_so_a_cancel_after_a_capture_with_it_is_refused(world, gateway):
    post = edge(world)
    payment_id = authorized(world)
    assert post(f"/payments/{payment_id}/capture", {})["statusCode"] == 200
    error = assert_error(post(f"/payments/{payment_id}/cancel", {}), 400, "invalid_request_error")
    assert error["code"] == "payment_not_cancelable"
    assert gateway_calls(gateway) == (1, 0)


def test_over_http_the_refusals_are_the_documented_400s(world):
    post = edge(world)
    payment_id = authorized(world, 1000)
    error = assert_error(post(f"/payments/{payment_id}/capture", {"amount": 1001}), 400, "invalid_request_error")
    assert (error["code"], error["param"]) == ("amount_too_large", "amount")
    assert post(f"/payments/{payment_id}/cancel", {}, key="x")["statusCode"] == 200
    error = assert_error(post(f"/payments/{payment_id}/capture", {}, key="c"), 400, "invalid_request_error")
    assert error["code"] == "payment_not_capturable"


def test_over_http_a_capture_or_cancel_needs_a_key_and_a_cancel_takes_no_members(world, gateway):
    post = edge(world)
    payment_id = authorized(world)
    assert_error(post(f"/payments/{payment_id}/capture", {}, key=None), 400, "invalid_request_error", "Idempotency-Key")
    assert_error(post(f"/payments/{payment_id}/cancel", {"amount": 1}), 400, "invalid_request_error", "amount")
    assert gateway_calls(gateway) == (0, 0)


def test_over_http_a_lost_capture_answer_is_a_504_naming_the_payment(world, gateway):
    post = edge(world)
    payment_id = authorized(world)
    gateway.fail_next("capture", Fault.LOST)
    error = assert_error(post(f"/payments/{payment_id}/capture", {}), 504, "gateway_error")
    assert error["payment_id"] == payment_id


# -- expiry -----------------------------------------------------------------------------------------------


def test_an_authorisation_past_capture_before_is_cancelled_as_expired_voided_and_its_hold_released(world, gateway):
    payment_id = authorized(world)
    world.clock.advance(AUTHORIZATION_VALIDITY - timedelta(minutes=1))
    assert world.service.reconcile()["expired"] == 0
    world.clock.advance(timedelta(minutes=2))
    assert world.service.reconcile()["expired"] == 1
    shown = world.service.get_payment(payment_id).body
    assert (shown["status"], shown["cancellation_reason"], shown["amount_capturable"]) == ("canceled", "expired", 0)
    assert net(world, payment_id) == {}
    assert the_charge(world, gateway, payment_id).status == "voided" and gateway_calls(gateway) == (0, 1)
    assert world.service.reconcile()["expired"] == 0  # listed no more


def test_an_authorisation_the_gateway_already_expired_is_cancelled_as_expired(world, gateway):
    payment_id = authorized(world)
    world.clock.advance(PAST_EXPIRY)
    gateway.advance(AUTHORIZATION_SECONDS + 1)
    assert world.service.reconcile()["expired"] == 1
    payment = world.ledger.payments[payment_id]
    assert (payment.status, payment.cancellation_reason) == (Status.CANCELED, CancellationReason.EXPIRED)
    assert the_charge(world, gateway, payment_id).status == "expired" and net(world, payment_id) == {}


def test_an_expiry_whose_void_answer_is_lost_is_settled_by_the_next_run(world, gateway):
    payment_id = authorized(world)
    world.clock.advance(PAST_EXPIRY)
    gateway.fail_next("void", Fault.LOST)
    assert world.service.reconcile()["errors"] == 1
    assert world.ledger.payments[payment_id].status is Status.REQUIRES_CAPTURE
    assert refused(lambda: world.service.capture(payment_id, None, "c1")) == (None, "payment_not_capturable")
    world.clock.advance(timedelta(minutes=2))
    assert world.service.reconcile()["settled"] == 1
    payment = world.ledger.payments[payment_id]
    assert (payment.status, payment.cancellation_reason) == (Status.CANCELED, CancellationReason.EXPIRED)
    assert net(world, payment_id) == {} and gateway_calls(gateway) == (0, 1)


def test_a_capture_the_gateway_refuses_as_expired_cancels_the_payment_and_is_refused(world, gateway):
    payment_id = authorized(world)
    gateway.advance(AUTHORIZATION_SECONDS + 1)  # the gateway's clock only: the service does not know yet
    assert refused(lambda: world.service.capture(payment_id, None, "c1")) == (None, "payment_not_capturable")
    payment = world.ledger.payments[payment_id]
    assert (payment.status, payment.cancellation_reason) == (Status.CANCELED, CancellationReason.EXPIRED)
    assert net(world, payment_id) == {}
    assert refused(lambda: world.service.capture(payment_id, None, "c1")) == (None, "payment_not_capturable")
    assert world.service.reconcile(settle_after=timedelta(0)) == dict.fromkeys(
        ("settled", "failed", "expired", "still_pending", "errors", "deferred", "overdue"), 0
    )


def test_a_cancel_of_an_authorisation_the_gateway_expired_is_answered_cancelled_as_expired(world, gateway):
    """The customer's cancel and the gateway's expiry end the same, with nothing held: the cancel is answered with
    the payment as it ended, its reason saying the authorisation had expired."""
    payment_id = authorized(world)
    gateway.advance(AUTHORIZATION_SECONDS + 1)
    answer = world.service.cancel(payment_id, "x1")
    assert (answer.status, answer.body["status"], answer.body["cancellation_reason"]) == (200, "canceled", "expired")
    assert net(world, payment_id) == {}


def test_an_authorisation_whose_answer_was_lost_and_that_expired_at_the_gateway_ends_cancelled(world, gateway):
    """Reconciliation's lookup finds the charge ``expired``: the authorisation was made, and ran out before it was
    booked. It ends as any expired authorisation does, not pending for ever."""
    failed = lose(world, gateway, "charge", lambda: pay(world, key="a", capture=False))
    gateway.advance(AUTHORIZATION_SECONDS + 1)
    world.clock.advance(PAST_EXPIRY)
    for _ in range(2):
        world.service.reconcile()
    payment = world.ledger.payments[failed.payment_id]
    assert (payment.status, payment.cancellation_reason) == (Status.CANCELED, CancellationReason.EXPIRED)
    assert net(world, failed.payment_id) == {}


def test_a_retry_of_an_authorisation_that_expired_at_the_gateway_meanwhile_is_answered_and_not_capturable(
    world, gateway
):
    failed = lose(world, gateway, "charge", lambda: pay(world, key="a", capture=False))
    gateway.advance(AUTHORIZATION_SECONDS + 1)  # the gateway's clock only: the key is still live
    answer = pay(world, key="a", capture=False)
    assert (answer.status, answer.body["id"]) == (201, failed.payment_id)
    assert refused(lambda: world.service.capture(failed.payment_id, None, "c1")) == (None, "payment_not_capturable")
    payment = world.ledger.payments[failed.payment_id]
    assert (payment.status, payment.cancellation_reason) == (Status.CANCELED, CancellationReason.EXPIRED)
    assert net(world, failed.payment_id) == {}


def test_a_capture_after_the_expiry_cancelled_the_payment_is_refused_and_nothing_is_asked(world, gateway):
    payment_id = authorized(world)
    world.clock.advance(PAST_EXPIRY)
    world.service.reconcile()
    calls = gateway_calls(gateway)
    assert refused(lambda: world.service.capture(payment_id, None, "c1")) == (None, "payment_not_capturable")
    assert gateway_calls(gateway) == calls


def test_an_authorisation_claimed_for_capture_is_not_expired_under_it(world, gateway):
    payment_id = authorized(world)
    lose(world, gateway, "capture", lambda: world.service.capture(payment_id, 400, "c1"))
    world.clock.advance(PAST_EXPIRY)
    counts = world.service.reconcile()
    assert (counts["settled"], counts["expired"]) == (1, 0)
    assert world.ledger.payments[payment_id].amount_captured == 400 and gateway_calls(gateway) == (1, 0)


def test_every_merchants_expired_authorisations_are_cancelled_in_one_run(world, gateway):
    mine = authorized(world)
    theirs = (
        world.other().create_payment(PaymentCommand(1000, "usd", card=card(), capture=False), "req", "b-1").body["id"]
    )
    world.clock.advance(PAST_EXPIRY)
    assert world.tenancy.reconcile()["expired"] == 2
    assert world.ledger.payments[mine].status is Status.CANCELED
    assert world.db.ledger("merchant-b").payments[theirs].status is Status.CANCELED


def test_several_authorisations_expire_in_one_run(world, gateway):
    payment_ids = [authorized(world, 100 + n) for n in range(3)]
    world.clock.advance(PAST_EXPIRY)
    assert world.service.reconcile()["expired"] == 3
    assert {world.ledger.payments[p].status for p in payment_ids} == {Status.CANCELED}
    assert gateway_calls(gateway) == (0, 3)


# -- what the gateway refuses, or shows ------------------------------------------------------------------------------


def test_a_capture_after_capture_before_is_refused_even_before_reconciliation_cancels_it(world, gateway):
    """The gateway's seven days start a little after the service's, so it may still hold the money: the capture is
    refused by the service's own ``capture_before``, and nothing is sent."""
    payment_id = authorized(world)
    world.clock.advance(PAST_EXPIRY)
    assert refused(lambda: world.service.capture(payment_id, None, "late")) == (None, "payment_not_capturable")
    assert gateway_calls(gateway) == (0, 0)
    assert the_charge(world, gateway, payment_id).status == "authorized"


class _LookupSaysAllCaptured(FakeGateway):
    """A lookup that shows a partly captured authorisation as captured in full."""

    def find_charge(self, reference):
        found = super().find_charge(reference)
        if found is not None and found.status == "succeeded":
            return replace(found, amount_captured=found.amount)
        return found


def test_a_lost_capture_is_never_booked_at_another_amount_than_it_asked_for():
    """A lookup that disagrees with the capture the gateway was asked for is not an answer: neither the retry nor
    reconciliation books it (the claim stays, and the disagreement is a 5xx and a reconcile error)."""
    gateway = _LookupSaysAllCaptured()
    world = fake_world(gateway)
    payment_id = authorized(world, 1000)
    lose(world, gateway, "capture", lambda: world.service.capture(payment_id, 400, "c1"))
    assert gateway.charge_by_id(world.ledger.payments[payment_id].charge_id).amount_captured == 400
    with pytest.raises(GatewayFailed):
        world.service.capture(payment_id, 400, "c1")
    world.clock.advance(timedelta(hours=1))
    assert world.service.reconcile(settle_after=timedelta(0))["errors"] == 1
    assert world.ledger.payments[payment_id].amount_captured == 0
    assert net(world, payment_id) == {HOLD: 1000, HOLD_OFFSET: -1000}


class _RefusesOnce(FakeGateway):
    """A gateway that refuses the first capture or void with a 400 while the charge stays authorised (a rule of
    its own): a definite "no", kept for the key as the sandbox keeps it."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refusing = refused

    def _refuse_once(self, operation: str) -> None:
        if self.refusing == operation:
            self.refusing = ""
            raise GatewayRejected(400, "processing_error", f"The {operation} was refused.")

    def _capture(self, charge_id, amount):
        self._refuse_once("capture")
        return super()._capture(charge_id, amount)

    def _void(self, charge_id):
        self._refuse_once("void")
        return super()._void(charge_id)


def test_a_capture_the_gateway_refuses_is_a_400_and_the_authorisation_can_still_be_cancelled():
    gateway = _RefusesOnce("capture")
    world = fake_world(gateway)
    payment_id = authorized(world, 1000)
    assert refused(lambda: world.service.capture(payment_id, None, "c1")) == (None, "payment_not_capturable")
    assert the_charge(world, gateway, payment_id).status == "authorized"
    world.clock.advance(timedelta(minutes=5))
    assert world.service.reconcile()["errors"] == 0  # nothing left claimed to ask about
    answer = world.service.cancel(payment_id, "x1")
    assert (answer.status, answer.body["status"]) == (200, "canceled")
    assert the_charge(world, gateway, payment_id).status == "voided"
    assert net(world, payment_id) == {}


def test_a_cancel_the_gateway_refuses_is_a_400_and_the_authorisation_can_still_be_captured_in_part():
    gateway = _RefusesOnce("void")
    world = fake_world(gateway)
    payment_id = authorized(world, 1000)
    assert refused(lambda: world.service.cancel(payment_id, "x1")) == (None, "payment_not_cancelable")
    world.clock.advance(timedelta(minutes=5))
    assert world.service.reconcile()["errors"] == 0
    answer = world.service.capture(payment_id, 600, "c1")  # a capture key the gateway never saw refused
    assert (answer.status, answer.body["amount_captured"]) == (200, 600)
    assert the_charge(world, gateway, payment_id).amount_captured == 600
