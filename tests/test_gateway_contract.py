"""One behaviour, two implementations: every test here runs against ``FakeGateway`` and against ``SparkleClient``
talking to the sandbox process, so the fake that service tests lean on cannot drift from the real client.

Faults are injected through a small adapter per implementation: the fake's per-call script, or the sandbox's
fault settings for the duration of one call."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date

import pytest
import requests

from lambdas.adapters.sparkle import RetryPolicy, SparkleClient
from lambdas.domain.cards import parse_card
from lambdas.gateway import (
    Charge,
    GatewayInvalidAnswer,
    GatewayOutcomeUnknown,
    GatewayRefund,
    GatewayRejected,
    GatewayUnavailable,
    Settlement,
    SettlementLine,
)
from sparkle_sandbox.server import (
    AUTHORIZATION_SECONDS,
    DECLINES,
    DEFAULT_SECRET_KEY,
    PROCESSING_ERROR_CARD,
    SLOW_CARD,
    SLOW_REFUND_AMOUNT,
    SUCCEEDING_CARDS,
)
from tests.support.fakes_gateway import FakeGateway, Fault

TODAY = date(2026, 11, 26)
VISA = "4242424242424242"


def card(number: str = VISA):
    return parse_card(number, 12, 2030, TODAY, "card")


def fresh(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class FakeWorld:
    def __init__(self) -> None:
        self.gateway = FakeGateway()

    @contextmanager
    def failing(self, fault: Fault, operation: str):
        self.gateway.fail_next(operation, fault)
        yield

    def charge_count(self, reference: str) -> int:
        return len(self.gateway.charges_for(reference))

    def refunded_total(self, charge_id: str) -> int:
        return self.gateway.refunded_total(charge_id)

    def status(self, charge_id: str) -> str:
        return self.gateway.charge_by_id(charge_id).status

    def advance(self, seconds: float) -> None:
        self.gateway.advance(seconds)

    def settle(self, drop: tuple[str, ...] = (), adjust: dict[str, int] | None = None, unknown: int = 0):
        return self.gateway.settle(drop, adjust or {}, unknown)


class SandboxWorld:
    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.gateway = SparkleClient(
            sandbox.url,
            lambda: DEFAULT_SECRET_KEY,
            read_timeout=0.5,
            retry=RetryPolicy(attempts=3, backoff_seconds=0.05),
        )

    @contextmanager
    def failing(self, fault: Fault, operation: str):
        """Every attempt of the call meets the fault (drop, garbage and slow apply to POSTs only)."""
        with self.sandbox.failing(fault):
            yield

    def charge_count(self, reference: str) -> int:
        return sum(1 for charge in self.sandbox.charges() if charge["reference"] == reference)

    def refunded_total(self, charge_id: str) -> int:
        return self._charge(charge_id)["amount_refunded"]

    def status(self, charge_id: str) -> str:
        return self._charge(charge_id)["status"]

    def advance(self, seconds: float) -> None:
        requests.post(f"{self.sandbox.url}/_sandbox/clock", json={"advance": seconds}, timeout=5).raise_for_status()

    def settle(self, drop: tuple[str, ...] = (), adjust: dict[str, int] | None = None, unknown: int = 0):
        """``POST /_sandbox/settle``: the settlements it made (none on its 204)."""
        body = {"drop": list(drop), "adjust": adjust or {}, "unknown": unknown}
        answer = requests.post(f"{self.sandbox.url}/_sandbox/settle", json=body, timeout=5)
        answer.raise_for_status()
        if answer.status_code == 204:
            return []
        made = answer.json()
        return [Settlement(**settlement) for settlement in made.get("data", [made])]

    def _charge(self, charge_id: str) -> dict:
        return next(charge for charge in self.sandbox.charges() if charge["id"] == charge_id)


@pytest.fixture(params=["fake", pytest.param("sandbox", marks=pytest.mark.integration)])
def world(request):
    return FakeWorld() if request.param == "fake" else SandboxWorld(request.getfixturevalue("sandbox"))


def charged(world, amount: int = 1000, number: str = VISA) -> Charge:
    reference = fresh("pay")
    return world.gateway.charge(reference, amount, "USD", card(number), idempotency_key=reference)


def authorised(world, amount: int = 1000, number: str = VISA) -> Charge:
    reference = fresh("pay")
    return world.gateway.charge(reference, amount, "USD", card(number), idempotency_key=reference, capture=False)


def captured(world, authorisation: Charge, amount: int, key: str | None = None) -> Charge:
    return world.gateway.capture(authorisation.id, amount, authorisation.reference, key or fresh("cap"))


def voided(world, authorisation: Charge, key: str | None = None) -> Charge:
    return world.gateway.void(authorisation.id, authorisation.reference, key or fresh("void"))


def refused(call) -> GatewayRejected:
    with pytest.raises(GatewayRejected) as rejection:
        call()
    assert rejection.value.status == 400
    return rejection.value


# --- charges ------------------------------------------------------------------------------


@pytest.mark.parametrize("number", (*SUCCEEDING_CARDS, "6011111111111117"))
def test_succeeding_cards_are_charged(world, number):
    charge = charged(world, 1999, number)
    assert (charge.status, charge.decline_code, charge.amount, charge.currency) == ("succeeded", None, 1999, "USD")
    assert charge.id.startswith("ch_")


@pytest.mark.parametrize("number", DECLINES)
def test_declining_cards_are_declined_with_their_code(world, number):
    charge = charged(world, 500, number)
    assert (charge.status, charge.decline_code) == ("declined", DECLINES[number])
    assert world.gateway.find_charge(charge.reference) == charge


def test_a_processing_error_is_unavailable_and_charges_nothing(world):
    with pytest.raises(GatewayUnavailable):
        world.gateway.charge("pay_error", 500, "USD", card(PROCESSING_ERROR_CARD), idempotency_key="pay_error")
    assert world.charge_count("pay_error") == 0


def test_a_replayed_key_gives_the_first_charge_and_another_body_an_unknown_outcome(world):
    first = charged(world, 700)
    assert world.gateway.charge(first.reference, 700, "USD", card(), idempotency_key=first.reference) == first
    with pytest.raises(GatewayOutcomeUnknown):
        world.gateway.charge(first.reference, 701, "USD", card(), idempotency_key=first.reference)
    assert world.charge_count(first.reference) == 1


def test_lookups_find_a_charge_by_its_reference_only(world):
    charge = charged(world)
    assert world.gateway.find_charge(charge.reference) == charge
    assert world.gateway.find_charge(fresh("pay_unknown")) is None


def test_a_charge_made_with_capture_is_captured_in_full_at_once(world):
    charge = charged(world, 1999)
    assert (charge.amount_captured, charge.amount_capturable, charge.expires) == (1999, 0, None)


# --- authorise, then capture or void --------------------------------------------------------


def test_an_authorisation_holds_the_amount_for_seven_days(world):
    authorisation = authorised(world, 1500)
    assert (authorisation.status, authorisation.amount, authorisation.decline_code) == ("authorized", 1500, None)
    assert (authorisation.amount_captured, authorisation.amount_capturable) == (0, 1500)
    assert abs(authorisation.expires - (time.time() + AUTHORIZATION_SECONDS)) < 60
    assert world.gateway.find_charge(authorisation.reference) == authorisation


@pytest.mark.parametrize("number", DECLINES)
def test_a_declining_card_declines_an_authorisation_and_holds_nothing(world, number):
    declined = authorised(world, 500, number)
    assert (declined.status, declined.decline_code, declined.amount_capturable) == ("declined", DECLINES[number], 0)
    assert refused(lambda: captured(world, declined, 500)).code == "charge_not_capturable"


def test_a_capture_in_full_succeeds_once(world):
    authorisation = authorised(world, 1000)
    charge = captured(world, authorisation, 1000)
    assert (charge.id, charge.status, charge.amount_captured, charge.amount_capturable) == (
        authorisation.id, "succeeded", 1000, 0)  # fmt: skip
    assert world.gateway.find_charge(authorisation.reference) == charge
    assert refused(lambda: captured(world, authorisation, 1000)).code == "charge_not_capturable"
    assert refused(lambda: voided(world, authorisation)).code == "charge_not_voidable"


def test_a_partial_capture_releases_the_rest_and_refunds_are_limited_to_what_was_captured(world):
    authorisation = authorised(world, 1000)
    charge = captured(world, authorisation, 600)
    assert (charge.status, charge.amount, charge.amount_captured, charge.amount_capturable) == (
        "succeeded", 1000, 600, 0)  # fmt: skip
    assert refused(lambda: captured(world, authorisation, 400)).code == "charge_not_capturable"
    world.gateway.refund(charge.id, 500, fresh("re"), idempotency_key=fresh("k"))
    assert refused(lambda: world.gateway.refund(charge.id, 101, fresh("re"), idempotency_key=fresh("k"))).amount_refused
    world.gateway.refund(charge.id, 100, fresh("re"), idempotency_key=fresh("k"))
    assert world.refunded_total(charge.id) == 600


def test_capturing_more_than_is_held_is_refused_and_leaves_the_authorisation_whole(world):
    authorisation = authorised(world, 1000)
    too_much = refused(lambda: captured(world, authorisation, 1001))
    assert (too_much.code, too_much.amount_refused) == ("amount_too_large", True)
    assert world.status(authorisation.id) == "authorized"
    assert captured(world, authorisation, 1000).amount_captured == 1000


def test_an_authorisation_cannot_be_refunded_before_it_is_captured(world):
    authorisation = authorised(world, 1000)
    refusal = refused(lambda: world.gateway.refund(authorisation.id, 100, fresh("re"), idempotency_key=fresh("k")))
    assert not refusal.amount_refused
    assert world.refunded_total(authorisation.id) == 0


def test_a_void_releases_the_authorisation_once_and_nothing_can_be_captured_after(world):
    authorisation = authorised(world, 1000)
    released = voided(world, authorisation)
    assert (released.id, released.status, released.amount_captured, released.amount_capturable) == (
        authorisation.id, "voided", 0, 0)  # fmt: skip
    assert world.gateway.find_charge(authorisation.reference) == released
    assert refused(lambda: voided(world, authorisation)).code == "charge_not_voidable"
    assert refused(lambda: captured(world, authorisation, 1000)).code == "charge_not_capturable"


def test_a_charge_made_with_capture_cannot_be_captured_or_voided(world):
    charge = charged(world, 1000)
    assert refused(lambda: captured(world, charge, 1000)).code == "charge_not_capturable"
    assert refused(lambda: voided(world, charge)).code == "charge_not_voidable"
    assert world.status(charge.id) == "succeeded"


def test_an_unknown_charge_cannot_be_captured_or_voided(world):
    unknown = Charge("ch_unknown", "authorized", None, 1000, "USD", "pay_unknown")
    assert refused(lambda: captured(world, unknown, 1000)).code == "invalid_request"
    assert refused(lambda: voided(world, unknown)).code == "invalid_request"


def test_an_authorisation_expires_on_the_gateways_clock_and_is_then_neither_captured_nor_voided(world):
    authorisation = authorised(world, 1000)
    world.advance(AUTHORIZATION_SECONDS - 120)
    assert world.gateway.find_charge(authorisation.reference).status == "authorized"
    world.advance(120)
    expired = world.gateway.find_charge(authorisation.reference)
    assert (expired.status, expired.amount_captured, expired.amount_capturable) == ("expired", 0, 0)
    assert refused(lambda: captured(world, authorisation, 1000)).code == "charge_expired"
    assert refused(lambda: voided(world, authorisation)).code == "charge_expired"
    assert world.status(authorisation.id) == "expired"


def test_a_captured_or_voided_charge_never_expires(world):
    capture, void = authorised(world), authorised(world)
    captured(world, capture, 1000)
    voided(world, void)
    world.advance(AUTHORIZATION_SECONDS + 1)
    assert (world.status(capture.id), world.status(void.id)) == ("succeeded", "voided")


def test_a_replayed_capture_key_captures_once_and_another_amount_is_an_unknown_outcome(world):
    authorisation = authorised(world, 1000)
    first = captured(world, authorisation, 700, key="cap_once")
    assert captured(world, authorisation, 700, key="cap_once") == first
    with pytest.raises(GatewayOutcomeUnknown):
        captured(world, authorisation, 600, key="cap_once")
    assert world.gateway.find_charge(authorisation.reference).amount_captured == 700


def test_a_replayed_void_key_gives_the_first_answer_not_a_refusal(world):
    authorisation = authorised(world, 1000)
    first = voided(world, authorisation, key="void_once")
    assert voided(world, authorisation, key="void_once") == first


def test_a_capture_key_is_scoped_to_its_charge(world):
    one, other = authorised(world, 1000), authorised(world, 1000)
    assert captured(world, one, 1000, key="cap_same").status == "succeeded"
    assert captured(world, other, 500, key="cap_same").amount_captured == 500


def test_a_capture_answered_for_another_reference_is_not_believed(world):
    authorisation = authorised(world, 1000)
    with pytest.raises(GatewayInvalidAnswer):
        world.gateway.capture(authorisation.id, 1000, fresh("pay_other"), fresh("cap"))


@pytest.mark.parametrize("charge_id", ["../refunds", "ch_1/../../refunds", "ch_1?amount=1", "ch_%2e%2e", "ch_", ""])
def test_an_id_that_could_steer_the_path_is_refused_unsent(world, charge_id):
    authorisation = authorised(world, 1000)
    steering = Charge(charge_id, "authorized", None, 1000, "USD", authorisation.reference)
    for call in (lambda: captured(world, steering, 1000), lambda: voided(world, steering)):
        with pytest.raises(GatewayInvalidAnswer):
            call()
    assert world.status(authorisation.id) == "authorized"


# --- refunds ------------------------------------------------------------------------------


def test_refunds_never_exceed_the_capture(world):
    charge = charged(world, 1000)
    first = world.gateway.refund(charge.id, 600, "re_a", idempotency_key=fresh("k"))
    assert (first.charge_id, first.amount, first.status, first.reference) == (charge.id, 600, "succeeded", "re_a")
    with pytest.raises(GatewayRejected) as refused:
        world.gateway.refund(charge.id, 401, "re_b", idempotency_key=fresh("k"))
    assert (refused.value.status, refused.value.amount_refused) == (400, True)
    world.gateway.refund(charge.id, 400, "re_c", idempotency_key=fresh("k"))
    assert world.refunded_total(charge.id) == 1000


def test_a_declined_or_unknown_charge_cannot_be_refunded_and_that_is_not_about_the_amount(world):
    declined = charged(world, 1000, "4000000000000002")
    for charge_id in (declined.id, "ch_unknown"):
        with pytest.raises(GatewayRejected) as refused:
            world.gateway.refund(charge_id, 100, fresh("re"), idempotency_key=fresh("k"))
        assert (refused.value.status, refused.value.amount_refused) == (400, False)


def test_a_replayed_refund_key_refunds_once(world):
    charge = charged(world, 1000)
    first = world.gateway.refund(charge.id, 300, "re_once", idempotency_key="re_once")
    assert world.gateway.refund(charge.id, 300, "re_once", idempotency_key="re_once") == first
    with pytest.raises(GatewayOutcomeUnknown):
        world.gateway.refund(charge.id, 301, "re_once", idempotency_key="re_once")
    assert world.refunded_total(charge.id) == 300


def test_lookups_find_a_refund_by_its_reference_only(world):
    charge = charged(world)
    refund = world.gateway.refund(charge.id, 100, "re_found", idempotency_key=fresh("k"))
    assert world.gateway.find_refund("re_found") == refund
    assert world.gateway.find_refund(fresh("re_unknown")) is None


def test_concurrent_refunds_with_different_keys_never_exceed_the_capture(world):
    charge = charged(world, 1000)

    def refund(n: int):
        try:
            return world.gateway.refund(charge.id, 300, f"re_{n}", idempotency_key=f"{charge.id}-{n}")
        except GatewayRejected as refused:
            return refused

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(refund, range(8)))
    assert sum(isinstance(o, GatewayRefund) for o in outcomes) == 3
    assert all(o.amount_refused for o in outcomes if isinstance(o, GatewayRejected))
    assert world.refunded_total(charge.id) == 900


# --- faults: what is known, and how a lost answer is settled ---------------------------------


def test_an_unavailable_gateway_processes_nothing_and_a_retry_charges_once(world):
    with world.failing(Fault.UNAVAILABLE, "charge"), pytest.raises(GatewayUnavailable):
        world.gateway.charge("pay_retry", 100, "USD", card(), idempotency_key="pay_retry")
    assert world.charge_count("pay_retry") == 0
    assert world.gateway.charge("pay_retry", 100, "USD", card(), idempotency_key="pay_retry").status == "succeeded"
    assert world.charge_count("pay_retry") == 1


@pytest.mark.parametrize("fault, error", [(Fault.LOST, GatewayOutcomeUnknown), (Fault.GARBAGE, GatewayInvalidAnswer)])
def test_a_charge_whose_answer_is_lost_or_garbled_was_made_and_settles_by_lookup(world, fault, error):
    with world.failing(fault, "charge"), pytest.raises(error):
        world.gateway.charge("pay_lost", 100, "USD", card(), idempotency_key="pay_lost")
    found = world.gateway.find_charge("pay_lost")
    assert (found.status, found.amount) == ("succeeded", 100)
    assert world.gateway.charge("pay_lost", 100, "USD", card(), idempotency_key="pay_lost") == found
    assert world.charge_count("pay_lost") == 1


@pytest.mark.parametrize("fault, error", [(Fault.LOST, GatewayOutcomeUnknown), (Fault.GARBAGE, GatewayInvalidAnswer)])
def test_a_refund_whose_answer_is_lost_or_garbled_was_made_and_settles_by_lookup(world, fault, error):
    charge = charged(world, 1000)
    with world.failing(fault, "refund"), pytest.raises(error):
        world.gateway.refund(charge.id, 250, "re_lost", idempotency_key="re_lost")
    found = world.gateway.find_refund("re_lost")
    assert (found.charge_id, found.amount) == (charge.id, 250)
    assert world.gateway.refund(charge.id, 250, "re_lost", idempotency_key="re_lost") == found
    assert world.refunded_total(charge.id) == 250


def test_the_slow_card_is_charged_its_key_stays_in_flight_and_the_lookup_settles_it(world):
    with pytest.raises(GatewayOutcomeUnknown):
        world.gateway.charge("pay_slow", 100, "USD", card(SLOW_CARD), idempotency_key="pay_slow")
    assert world.gateway.find_charge("pay_slow").status == "succeeded"
    with pytest.raises(GatewayOutcomeUnknown):  # still in flight: 409, never a second charge
        world.gateway.charge("pay_slow", 100, "USD", card(SLOW_CARD), idempotency_key="pay_slow")
    assert world.charge_count("pay_slow") == 1


def test_the_slow_refund_amount_is_refunded_and_the_lookup_settles_it(world):
    charge = charged(world, 5000)
    with pytest.raises(GatewayOutcomeUnknown):
        world.gateway.refund(charge.id, SLOW_REFUND_AMOUNT, "re_slow", idempotency_key="re_slow")
    assert world.gateway.find_refund("re_slow").amount == SLOW_REFUND_AMOUNT
    with pytest.raises(GatewayOutcomeUnknown):
        world.gateway.refund(charge.id, SLOW_REFUND_AMOUNT, "re_slow", idempotency_key="re_slow")
    assert world.refunded_total(charge.id) == SLOW_REFUND_AMOUNT


def test_a_slow_answer_is_an_unknown_outcome_of_a_charge_that_was_made(world):
    with world.failing(Fault.SLOW, "charge"), pytest.raises(GatewayOutcomeUnknown):
        world.gateway.charge("pay_late", 100, "USD", card(), idempotency_key="pay_late")
    assert world.gateway.find_charge("pay_late").amount == 100
    assert world.charge_count("pay_late") == 1


@pytest.mark.parametrize("fault, error", [(Fault.LOST, GatewayOutcomeUnknown), (Fault.GARBAGE, GatewayInvalidAnswer)])
def test_a_capture_whose_answer_is_lost_or_garbled_was_made_and_settles_by_lookup(world, fault, error):
    authorisation = authorised(world, 1000)
    with world.failing(fault, "capture"), pytest.raises(error):
        captured(world, authorisation, 800, key="cap_lost")
    found = world.gateway.find_charge(authorisation.reference)
    assert (found.id, found.status, found.amount_captured) == (authorisation.id, "succeeded", 800)
    assert captured(world, authorisation, 800, key="cap_lost") == found


@pytest.mark.parametrize("fault, error", [(Fault.LOST, GatewayOutcomeUnknown), (Fault.GARBAGE, GatewayInvalidAnswer)])
def test_a_void_whose_answer_is_lost_or_garbled_was_made_and_settles_by_lookup(world, fault, error):
    authorisation = authorised(world, 1000)
    with world.failing(fault, "void"), pytest.raises(error):
        voided(world, authorisation, key="void_lost")
    assert world.gateway.find_charge(authorisation.reference).status == "voided"
    assert voided(world, authorisation, key="void_lost").status == "voided"


@pytest.mark.parametrize("operation", ["capture", "void"])
def test_an_unavailable_gateway_changes_no_authorisation_and_a_retry_with_the_key_does(world, operation):
    authorisation = authorised(world, 1000)
    change = {
        "capture": lambda: captured(world, authorisation, 1000, key="k"),
        "void": lambda: voided(world, authorisation, key="k"),
    }[operation]
    with world.failing(Fault.UNAVAILABLE, operation), pytest.raises(GatewayUnavailable):
        change()
    assert world.status(authorisation.id) == "authorized"
    assert change().status == ("succeeded" if operation == "capture" else "voided")


def test_a_slow_capture_answer_is_an_unknown_outcome_of_a_capture_that_was_made(world):
    authorisation = authorised(world, 1000)
    with world.failing(Fault.SLOW, "capture"), pytest.raises(GatewayOutcomeUnknown):
        captured(world, authorisation, 1000, key="cap_slow")
    assert world.gateway.find_charge(authorisation.reference).status == "succeeded"
    with pytest.raises(GatewayOutcomeUnknown):  # still in flight: 409, never a second capture
        captured(world, authorisation, 1000, key="cap_slow")


@pytest.mark.parametrize("operation", ["find_charge", "find_refund"])
def test_an_unavailable_lookup_is_unavailable(world, operation):
    with world.failing(Fault.UNAVAILABLE, operation), pytest.raises(GatewayUnavailable):
        getattr(world.gateway, operation)("anything")


# --- settlements ------------------------------------------------------------------------------


def all_lines(world, settlement: Settlement, limit: int = 100) -> list[SettlementLine]:
    """Every line of ``settlement``, paged through ``limit`` at a time."""
    lines, after = [], None
    while True:
        page, has_more = world.gateway.settlement_lines(settlement.id, starting_after=after, limit=limit)
        lines += page
        if not has_more:
            return lines
        after = page[-1].id


def settled_once(world) -> Settlement:
    (settlement,) = world.settle()
    return settlement


def test_fees_are_2_9_percent_of_each_charge_rounded_half_up_plus_30_and_refunds_cost_none(world):
    half, down, whole = charged(world, 1500), charged(world, 1001), charged(world, 1000)  # 43.5, 29.029, 29
    refund = world.gateway.refund(whole.id, 500, fresh("re"), idempotency_key=fresh("k"))
    settlement = settled_once(world)
    lines = {(line.type, line.reference): (line.amount, line.fee) for line in all_lines(world, settlement)}
    assert lines == {
        ("charge", half.reference): (1500, 74),
        ("charge", down.reference): (1001, 59),
        ("charge", whole.reference): (1000, 59),
        ("refund", refund.reference): (-500, 0),
    }
    assert (settlement.currency, settlement.gross, settlement.fees, settlement.net, settlement.lines) == (
        "USD", 3001, 192, 2809, 4)  # fmt: skip
    assert world.gateway.settlements(0) == [settlement]


def test_a_line_names_its_charge_refund_and_reference(world):
    charge = charged(world, 1000)
    refund = world.gateway.refund(charge.id, 200, fresh("re"), idempotency_key=fresh("k"))
    by_type = {line.type: line for line in all_lines(world, settled_once(world))}
    assert (by_type["charge"].charge_id, by_type["charge"].refund_id) == (charge.id, None)
    assert (by_type["refund"].charge_id, by_type["refund"].refund_id) == (charge.id, refund.id)
    assert {line.currency for line in by_type.values()} == {"USD"}
    assert all(line.id.startswith("sl_") for line in by_type.values())


def test_lines_are_paged_by_limit_and_starting_after(world):
    references = {charged(world, 100 + n).reference for n in range(5)}
    settlement = settled_once(world)
    first, more = world.gateway.settlement_lines(settlement.id, limit=2)
    second, more_after_second = world.gateway.settlement_lines(settlement.id, starting_after=first[-1].id, limit=2)
    third, more_after_third = world.gateway.settlement_lines(settlement.id, starting_after=second[-1].id, limit=2)
    assert [len(first), len(second), len(third)] == [2, 2, 1]
    assert (more, more_after_second, more_after_third) == (True, True, False)
    assert first + second + third == all_lines(world, settlement) == all_lines(world, settlement, limit=1)
    assert {line.reference for line in first + second + third} == references


def test_a_dropped_reference_stays_unsettled_until_the_next_settlement(world):
    kept, dropped = charged(world, 1000), charged(world, 2000)
    (first,) = world.settle(drop=(dropped.reference,))
    assert [line.reference for line in all_lines(world, first)] == [kept.reference]
    assert (first.gross, first.lines) == (1000, 1)
    world.advance(5)
    (second,) = world.settle()
    assert [line.reference for line in all_lines(world, second)] == [dropped.reference]
    assert world.settle() == []


def test_an_adjusted_reference_settles_for_another_amount_with_the_fee_on_it(world):
    charge = charged(world, 1000)
    (line,) = all_lines(world, settled_once_with(world, adjust={charge.reference: 500}))
    assert (line.reference, line.amount, line.fee) == (charge.reference, 1500, 74)


def settled_once_with(world, **faults) -> Settlement:
    (settlement,) = world.settle(**faults)
    return settlement


def test_unknown_lines_name_a_reference_and_charge_nobody_knows(world):
    charge = charged(world, 1000)
    settlement = settled_once_with(world, unknown=2)
    lines = all_lines(world, settlement)
    unknown = [line for line in lines if line.reference != charge.reference]
    assert (len(lines), settlement.lines, len(unknown)) == (3, 3, 2)
    for line in unknown:
        assert (line.type, line.refund_id) == ("charge", None)
        assert line.charge_id != charge.id and world.gateway.find_charge(line.reference) is None
    assert settlement.net == sum(line.amount - line.fee for line in lines)


def test_nothing_unsettled_makes_no_settlement(world):
    assert world.settle() == []
    authorised(world, 1000)
    charged(world, 1000, "4000000000000002")
    assert world.settle() == [] and world.gateway.settlements(0) == []


def test_settlements_are_listed_oldest_first_and_filtered_by_created_after(world):
    charged(world)
    first = settled_once(world)
    world.advance(10)
    charged(world)
    second = settled_once(world)
    assert second.created >= first.created + 10
    assert world.gateway.settlements(0) == [first, second]
    assert world.gateway.settlements(first.created) == [second]
    assert world.gateway.settlements(second.created) == []


def test_each_capture_and_refund_is_settled_once_in_the_first_settlement_after_it(world):
    charge, authorisation = charged(world, 1000), authorised(world, 1000)
    first = settled_once(world)
    capture = captured(world, authorisation, 600)
    refund = world.gateway.refund(charge.id, 300, fresh("re"), idempotency_key=fresh("k"))
    world.advance(5)
    second = settled_once(world)
    assert world.settle() == []
    settled = [(line.type, line.charge_id, line.refund_id, line.amount) for line in all_lines(world, first)]
    assert settled == [("charge", charge.id, None, 1000)]
    later = {(line.type, line.charge_id, line.refund_id, line.amount) for line in all_lines(world, second)}
    assert later == {("charge", capture.id, None, 600), ("refund", charge.id, refund.id, -300)}


def test_each_currency_settles_apart(world):
    usd = charged(world, 1000)
    eur = world.gateway.charge(fresh("pay"), 2000, "EUR", card(), idempotency_key=fresh("k"))
    made = world.settle()
    assert sorted((s.currency, s.gross, s.lines) for s in made) == [("EUR", 2000, 1), ("USD", 1000, 1)]
    by_currency = {s.currency: [line.reference for line in all_lines(world, s)] for s in made}
    assert by_currency == {"USD": [usd.reference], "EUR": [eur.reference]}


@pytest.mark.parametrize(
    "settlement_id", ["../charges", "st_1/../../v1/charges", "st_1?limit=1", "st_", "sl_1", "", "st_" + "a" * 65]
)
def test_a_settlement_id_that_could_steer_the_path_is_refused_unsent(world, settlement_id):
    with pytest.raises(GatewayInvalidAnswer):
        world.gateway.settlement_lines(settlement_id)


def test_a_line_id_to_start_after_that_is_not_one_is_refused_unsent(world):
    charged(world)
    settlement = settled_once(world)
    with pytest.raises(GatewayInvalidAnswer):
        world.gateway.settlement_lines(settlement.id, starting_after="sl_1&limit=1000")


@pytest.mark.parametrize("operation", ["settlements", "settlement_lines"])
def test_an_unavailable_settlement_lookup_is_unavailable(world, operation):
    charged(world)
    settlement = settled_once(world)
    call = {
        "settlements": lambda: world.gateway.settlements(0),
        "settlement_lines": lambda: all_lines(world, settlement),
    }
    with world.failing(Fault.UNAVAILABLE, operation), pytest.raises(GatewayUnavailable):
        call[operation]()
