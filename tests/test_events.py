"""Events on the in-memory fakes: each state change writes exactly one event, in its own transaction, showing the
object as GET shows it right after; a lost race or a failed transaction writes none; GET /events pages, filters and
stays within the merchant."""

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from lambdas.domain.errors import GatewayFailed, InvalidRequest, NotFound
from lambdas.domain.events import EVENT_RETENTION, EventType
from lambdas.domain.payments import AUTHORIZATION_VALIDITY, Status
from lambdas.domain.rules import RuleSet
from lambdas.ports import LostRace
from lambdas.presenters import event_body
from lambdas.response_models import EventListResponse, EventResponse
from lambdas.service import PaymentService
from lambdas.use_cases import captures, payments, refunds
from tests.support.api import assert_error
from tests.support.events import body_of, invoke
from tests.support.fakes import FakeClock, FakeLedgerStore, FakeUnitOfWork, FakeWorld, fake_world
from tests.support.fakes_gateway import Fault
from tests.support.leaks import card_data_in
from tests.support.payments import DECLINED_CARD, VISA, captured, pay

GIVE_UP = timedelta(hours=2)  # past reconciliation's give-up time


class TickingClock(FakeClock):
    """A millisecond passes at every reading, so events list in the order they were written (those written in one
    millisecond list in the order of their ids)."""

    def __call__(self) -> datetime:
        self.advance(timedelta(milliseconds=1))
        return self.now


@pytest.fixture
def world(gateway) -> FakeWorld:
    return fake_world(gateway, clock=TickingClock())


def events(world) -> list[dict[str, Any]]:
    """Merchant A's events as GET /events shows them, oldest first."""
    body = world.service.list_events("100", None, None).body
    assert not body["has_more"]
    for shown in body["data"]:
        EventListResponse.model_validate(body)
        EventResponse.model_validate(shown)
    return body["data"][::-1]


def new_events(world, seen: int) -> list[dict[str, Any]]:
    return events(world)[seen:]


def authorized(world, key: str = "auth") -> str:
    answer = pay(world, key=key, capture=False)
    assert answer.body["status"] == "requires_capture"
    return answer.body["id"]


def the_one_event(world, seen: int, event_type: EventType) -> dict[str, Any]:
    """The one event written since ``seen`` were, of ``event_type``, read back by its id as listed."""
    (event,) = new_events(world, seen)
    assert event["type"] == event_type.value
    assert world.service.get_event(event["id"]).body == event
    return event


# -- each change, one event, its object as GET shows it -------------------------------------------------------------


def test_a_succeeded_payment_writes_payment_succeeded_showing_it_as_get_does(world):
    answer = pay(world, metadata={"order": "A-1"})
    event = the_one_event(world, 0, EventType.PAYMENT_SUCCEEDED)
    assert event["data"]["object"] == answer.body == world.service.get_payment(answer.body["id"]).body
    assert event["data"]["object"]["metadata"] == {"order": "A-1"}


def test_a_payment_declined_by_the_gateway_writes_payment_declined(world):
    answer = pay(world, number=DECLINED_CARD)
    event = the_one_event(world, 0, EventType.PAYMENT_DECLINED)
    payment_id = answer.body["error"]["payment_id"]
    assert event["data"]["object"] == world.service.get_payment(payment_id).body
    assert event["data"]["object"]["status"] == "declined"


def test_a_payment_declined_by_a_rule_writes_payment_declined_and_never_asks_the_gateway(gateway):
    world = fake_world(gateway, RuleSet(max_amount={"USD": 500}), TickingClock())
    answer = pay(world, amount=501)
    event = the_one_event(world, 0, EventType.PAYMENT_DECLINED)
    assert event["data"]["object"] == world.service.get_payment(answer.body["error"]["payment_id"]).body
    assert event["data"]["object"]["decline_code"] == "rule_blocked" and gateway.requests["charge"] == 0


def test_a_payment_declined_by_the_velocity_rule_writes_one_event(gateway):
    world = fake_world(gateway, RuleSet(velocity_per_hour=1), TickingClock())
    pay(world, key="first")
    answer = pay(world, key="second")
    event = the_one_event(world, 1, EventType.PAYMENT_DECLINED)
    assert event["data"]["object"]["id"] == answer.body["error"]["payment_id"]


def test_a_pending_payment_writes_no_event_until_reconciliation_settles_it(world, gateway):
    gateway.fail_next("charge", Fault.LOST)
    with pytest.raises(GatewayFailed) as lost:
        pay(world)
    assert events(world) == []
    world.clock.advance(timedelta(minutes=2))
    world.service.reconcile()
    event = the_one_event(world, 0, EventType.PAYMENT_SUCCEEDED)
    assert event["data"]["object"] == world.service.get_payment(lost.value.payment_id).body


def test_a_payment_given_up_writes_payment_failed(world, gateway):
    gateway.fail_next("charge", Fault.UNAVAILABLE)
    with pytest.raises(GatewayFailed) as failed:
        pay(world)
    world.clock.advance(GIVE_UP)
    assert world.service.reconcile()["failed"] == 1
    event = the_one_event(world, 0, EventType.PAYMENT_FAILED)
    assert event["data"]["object"] == world.service.get_payment(failed.value.payment_id).body


def test_an_authorisation_writes_requires_capture_then_its_capture_payment_succeeded(world):
    payment_id = authorized(world)
    authorised = the_one_event(world, 0, EventType.PAYMENT_REQUIRES_CAPTURE)
    assert authorised["data"]["object"]["amount_capturable"] == 1000
    answer = world.service.capture(payment_id, 400, "c1")
    event = the_one_event(world, 1, EventType.PAYMENT_SUCCEEDED)
    assert event["data"]["object"] == answer.body == world.service.get_payment(payment_id).body
    assert event["data"]["object"]["amount_captured"] == 400
    assert world.service.capture(payment_id, 400, "c1").replayed and len(events(world)) == 2


def test_a_cancelled_authorisation_writes_payment_canceled(world):
    payment_id = authorized(world)
    answer = world.service.cancel(payment_id, "x1")
    event = the_one_event(world, 1, EventType.PAYMENT_CANCELED)
    assert event["data"]["object"] == answer.body == world.service.get_payment(payment_id).body


def test_an_expired_authorisation_writes_payment_canceled_as_expired(world):
    payment_id = authorized(world)
    world.clock.advance(AUTHORIZATION_VALIDITY + timedelta(minutes=1))
    assert world.service.reconcile()["expired"] == 1
    event = the_one_event(world, 1, EventType.PAYMENT_CANCELED)
    assert event["data"]["object"]["cancellation_reason"] == "expired"
    assert event["data"]["object"] == world.service.get_payment(payment_id).body


def test_a_refund_writes_refund_succeeded_showing_the_refund_as_answered(world):
    payment_id = captured(world)
    answer = world.service.refund(payment_id, 300, "r1")
    event = the_one_event(world, 1, EventType.REFUND_SUCCEEDED)
    assert event["data"]["object"] == answer.body
    kept = world.deps.store.get_event(event["id"]).payment  # the payment as the refund left it
    assert (
        (kept.amount_refunded, kept.amount_reserved)
        == (300, 0)
        == (world.ledger.payments[payment_id].amount_refunded, 0)
    )
    assert world.service.refund(payment_id, 300, "r1").replayed and len(events(world)) == 2


def test_a_refund_given_up_by_reconciliation_writes_refund_failed(world, gateway):
    payment_id = captured(world)
    gateway.fail_next("refund", Fault.UNAVAILABLE)
    with pytest.raises(GatewayFailed) as failed:
        world.service.refund(payment_id, 300, "r1")
    world.clock.advance(GIVE_UP)
    assert world.service.reconcile()["failed"] == 1
    event = the_one_event(world, 1, EventType.REFUND_FAILED)
    assert event["data"]["object"] == {
        "id": failed.value.refund_id,
        "payment_id": payment_id,
        "amount": 300,
        "status": "failed",
        "created_at": event["data"]["object"]["created_at"],
    }


def test_a_refund_the_gateway_refuses_for_its_amount_writes_refund_failed(world, gateway):
    payment_id = captured(world)
    gateway.refund(world.ledger.payments[payment_id].charge_id, 900, "outside", "outside")  # refunded elsewhere
    with pytest.raises(InvalidRequest):
        world.service.refund(payment_id, 300, "r1")
    event = the_one_event(world, 1, EventType.REFUND_FAILED)
    assert event["data"]["object"]["status"] == "failed" and event["data"]["object"]["amount"] == 300


# -- races and failures: never an event without its change, nor a change without its event ----------------------


def test_the_loser_of_a_race_to_settle_a_payment_writes_no_second_event(world, gateway):
    gateway.fail_next("charge", Fault.LOST)
    with pytest.raises(GatewayFailed) as lost:
        pay(world)
    stale = world.deps.store.get_payment(lost.value.payment_id)
    charge = gateway.find_charge(stale.id)
    for _ in range(2):  # the second meets the payment settled, and answers with it
        assert payments.settle(world.deps, stale, charge, None).payment.status is Status.SUCCEEDED
    assert [e["type"] for e in events(world)] == ["payment.succeeded"]


def test_the_loser_of_a_race_to_book_a_refund_writes_no_second_event(world, gateway):
    payment_id = captured(world)
    gateway.fail_next("refund", Fault.LOST)
    with pytest.raises(GatewayFailed) as lost:
        world.service.refund(payment_id, 300, "r1")
    payment = world.deps.store.get_payment(payment_id)
    refund = world.deps.store.get_refund(payment_id, lost.value.refund_id)
    made = gateway.find_refund(refund.id)
    for _ in range(2):
        refunds.book(world.deps, payment, refund, made, None)
    assert [e["type"] for e in events(world)] == ["payment.succeeded", "refund.succeeded"]


def test_the_loser_of_a_race_to_book_a_capture_writes_no_second_event(world, gateway):
    payment_id = authorized(world)
    gateway.fail_next("capture", Fault.LOST)
    with pytest.raises(GatewayFailed):
        world.service.capture(payment_id, None, "c1")
    claimed = world.deps.store.get_payment(payment_id)
    charge = gateway.find_charge(payment_id)
    for _ in range(2):
        assert captures.book(world.deps, claimed, charge, None).status is Status.SUCCEEDED
    assert [e["type"] for e in events(world)] == ["payment.requires_capture", "payment.succeeded"]


class _FailingPart(FakeLedgerStore):
    """A store one of whose parts fails its condition: the change's own, or its event's."""

    def __init__(self, store: FakeLedgerStore, failing: str) -> None:
        super().__init__(store.db, store.merchant)
        self.failing = failing

    def _fail(self, uow: FakeUnitOfWork) -> None:
        uow.add("injected", lambda: (False, None), lambda: None)

    def settle_payment(self, uow, before, after, entries) -> None:
        super().settle_payment(uow, before, after, entries)
        if self.failing == "change":
            self._fail(uow)

    def add_event(self, uow, event) -> None:
        super().add_event(uow, event)
        if self.failing == "event":
            self._fail(uow)


@pytest.mark.parametrize("failing", ["change", "event"])
def test_a_transaction_that_fails_writes_neither_the_change_nor_its_event(world, gateway, failing):
    failing_world = replace(
        world, service=PaymentService(replace(world.deps, store=_FailingPart(world.deps.store, failing)))
    )
    with pytest.raises(GatewayFailed) as failed:
        pay(failing_world)
    assert world.ledger.payments[failed.value.payment_id].status is Status.PENDING
    assert events(world) == [] and world.ledger.entries == {}
    world.clock.advance(timedelta(minutes=2))
    world.service.reconcile()  # the working store settles it: then both
    assert [e["type"] for e in events(world)] == ["payment.succeeded"]


def test_an_event_id_is_written_once(world):
    pay(world)
    (stored,) = world.ledger.events.values()
    uow = world.deps.store.unit_of_work()
    world.deps.store.add_event(uow, replace(stored, type=EventType.PAYMENT_FAILED))
    with pytest.raises(LostRace) as lost:
        uow.commit()
    assert set(lost.value.conflicts) == {"event"}
    assert world.ledger.events[stored.id].type is EventType.PAYMENT_SUCCEEDED


# -- what events hold ------------------------------------------------------------------------------------------------


def test_events_carry_no_card_number_or_cvc_only_the_masked_card(world, gateway):
    pay(world, key="k1", number=VISA)
    pay(world, key="k2", number=DECLINED_CARD)
    payment_id = authorized(world, key="k3")
    world.service.capture(payment_id, None, "c1")
    world.service.refund(payment_id, 10, "r1")
    shown = events(world)
    assert len(shown) == 5
    for text in (repr(shown), repr(list(world.ledger.events.values()))):
        assert card_data_in(text) == [] and "cvc" not in text.lower()
    assert shown[0]["data"]["object"]["card"]["last4"] == VISA[-4:]


def test_an_event_is_kept_for_its_retention(world):
    pay(world)
    (event,) = world.ledger.events.values()
    assert event.expires_at == event.created_at + EVENT_RETENTION
    assert timedelta(days=30) <= EVENT_RETENTION


# -- GET /events ------------------------------------------------------------------------------------------------------


def _many(world, count: int) -> list[str]:
    """``count`` events: payments alternately succeeded and declined, one a minute; their ids, newest first."""
    for n in range(count):
        pay(world, key=f"k{n}", number=VISA if n % 2 == 0 else DECLINED_CARD)
        world.clock.advance(timedelta(minutes=1))
    return [e["id"] for e in events(world)][::-1]


def test_events_are_listed_newest_first_page_by_page(world):
    ids = _many(world, 5)
    first = world.service.list_events("2", None, None).body
    assert ([e["id"] for e in first["data"]], first["has_more"]) == (ids[:2], True)
    second = world.service.list_events("2", ids[1], None).body
    assert ([e["id"] for e in second["data"]], second["has_more"]) == (ids[2:4], True)
    last = world.service.list_events("2", ids[3], None).body
    assert ([e["id"] for e in last["data"]], last["has_more"]) == (ids[4:], False)
    assert [e["id"] for e in world.service.list_events(None, None, None).body["data"]] == ids  # 10 by default


def test_a_type_filter_pages_through_that_type_only_and_knows_when_none_follow(world):
    ids = _many(world, 6)
    declined = ids[0::2]  # the newest (fifth payment, n = 5) was declined
    page = world.service.list_events("2", None, "payment.declined").body
    assert ([e["id"] for e in page["data"]], page["has_more"]) == (declined[:2], True)
    rest = world.service.list_events("2", declined[1], "payment.declined").body
    assert ([e["id"] for e in rest["data"]], rest["has_more"]) == (declined[2:], False)
    assert world.service.list_events("10", None, "refund.failed").body == {"data": [], "has_more": False}


@pytest.mark.parametrize(
    ("limit", "starting_after", "event_type", "param"),
    [
        ("0", None, None, "limit"),
        ("101", None, None, "limit"),
        ("ten", None, None, "limit"),
        (None, "evt_unknown", None, "starting_after"),
        (None, "evt_" + "0" * 24, None, "starting_after"),
        (None, "pay_" + "0" * 24, None, "starting_after"),
        (None, None, "payment.refunded", "type"),
        (None, None, "PAYMENT.SUCCEEDED", "type"),
        (None, None, "", "type"),
    ],
)
def test_a_bad_listing_parameter_is_a_400_naming_it(world, limit, starting_after, event_type, param):
    with pytest.raises(InvalidRequest) as refused:
        world.service.list_events(limit, starting_after, event_type)
    assert refused.value.param == param


def test_another_merchants_event_is_unknown_to_get_and_to_paging(world):
    pay(world)
    (event_id,) = world.ledger.events
    other = world.other()
    with pytest.raises(NotFound):
        other.get_event(event_id)
    with pytest.raises(InvalidRequest) as refused:
        other.list_events(None, event_id, None)
    assert refused.value.param == "starting_after"
    assert other.list_events(None, None, None).body == {"data": [], "has_more": False}


@pytest.mark.parametrize("event_id", ["", "evt_x", "4242424242424242", "evt_" + "0" * 24])
def test_an_unknown_event_is_a_404(world, event_id):
    with pytest.raises(NotFound):
        world.service.get_event(event_id)


def test_an_event_body_is_the_contracts_shape(world):
    pay(world)
    (event,) = world.ledger.events.values()
    body = event_body(world.deps.store.get_event(event.id))
    assert set(body) == {"id", "type", "created_at", "data"} and set(body["data"]) == {"object"}
    assert body["id"].startswith("evt_") and body["created_at"].endswith("Z")


def test_over_http_the_listings_refusals_are_400s_naming_the_param_and_an_unknown_event_a_404(aws_env):
    for query, param in (("type=payment.refunded", "type"), ("starting_after=evt_x", "starting_after"),
                         ("limit=0", "limit")):  # fmt: skip
        assert_error(invoke("GET", f"/events?{query}"), 400, "invalid_request_error", param)
    assert_error(invoke("GET", "/events/evt_" + "0" * 24), 404, "invalid_request_error")
    assert body_of(invoke("GET", "/events?type=payment.failed")) == {"data": [], "has_more": False}
