"""Settlement answers a gateway should never give (pages that never move on, lines that name a payment with the
wrong type, gateway id, currency or amount, references no service sent): each is refused, recorded as a mismatch or
kept as the operator's, and never books money twice, into the wrong movement, or stops the settlements after it."""

import pytest

from lambdas import deadline
from lambdas.domain.payments import RECEIVABLE
from lambdas.domain.settlements import MismatchReason, Settlement, SettlementLine
from lambdas.use_cases import settlements
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.settlements import import_settlements
from tests.support.fakes import fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.fakes_settlements import FakeSettlementImports, FakeSettlementRecords
from tests.support.payments import captured, card


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def world(gateway):
    return fake_world(gateway)


@pytest.fixture
def imports(world) -> FakeSettlementImports:
    return FakeSettlementImports(world.db)


def run(world, gateway, imports) -> dict[str, int]:
    merchants = [world.tenancy.dependencies(merchant) for merchant in world.tenancy.directory.merchants()]
    return import_settlements(gateway, imports, merchants, world.clock)


def receivable(world) -> int:
    rows = world.service.balances().body["balances"]
    return sum(row["amount"] for row in rows if row["account"] == RECEIVABLE)


def charge_of(world, payment_id: str) -> str:
    return world.deps.store.get_payment(payment_id, with_metadata=False).charge_id


def settles_only(gateway, settlement: Settlement, lines: list[SettlementLine]) -> None:
    """The gateway lists only ``settlement``, with ``lines`` in pages as it should."""
    gateway.settlements = lambda created_after: [settlement]

    def page(settlement_id, starting_after=None, limit=100):
        ids = [line.id for line in lines]
        start = 0 if starting_after is None else ids.index(starting_after) + 1
        return lines[start : start + limit], start + limit < len(lines)

    gateway.settlement_lines = page


def a_settlement(world, settlement_id: str, lines: list[SettlementLine], currency: str = "USD") -> Settlement:
    gross, fees = sum(line.amount for line in lines), sum(line.fee for line in lines)
    return Settlement(settlement_id, currency, int(world.clock().timestamp()), gross, fees, gross - fees, len(lines))


def repeating_its_first_page(gateway, settlement_id: str) -> None:
    """The gateway ignores ``starting_after`` for ``settlement_id``: the same page, with more to follow, forever."""
    real_lines = gateway.settlement_lines
    asked = []

    def lines(listed_id, starting_after=None, limit=100):
        if listed_id != settlement_id:
            return real_lines(listed_id, starting_after, limit)
        asked.append(starting_after)
        return real_lines(listed_id, None, limit)[0], True

    gateway.settlement_lines = lines
    return asked


def test_pages_that_never_move_on_are_refused_and_the_next_settlement_is_imported(world, gateway, imports):
    captured(world, 1000)
    (looping,) = gateway.settle()
    captured(world, 2000)
    (healthy,) = gateway.settle()
    asked = repeating_its_first_page(gateway, looping.id)

    counts = run(world, gateway, imports)
    assert counts["errors"] == 1 and counts["settlements"] == 1
    assert len(asked) == 2  # the first page, then the same page again: refused
    assert world.deps.store.get_share(healthy.id).complete
    assert world.deps.store.get_share(looping.id).complete is False


def test_pages_that_never_move_on_do_not_spend_the_runs_time(world, gateway, imports):
    captured(world, 1000)
    (looping,) = gateway.settle()
    captured(world, 2000)
    (healthy,) = gateway.settle()
    repeating_its_first_page(gateway, looping.id)
    deadline.start(settlements.PAGE_SECONDS * 3 + deadline.WRITE_RESERVE_SECONDS)
    try:
        run(world, gateway, imports)
    finally:
        deadline.start(float("inf"))
    assert world.deps.store.get_share(healthy.id).complete


def test_a_line_with_another_charge_id_than_the_payments_is_the_operators(world, gateway, imports):
    payment = captured(world, 1000)
    forged = SettlementLine("sl_forged1", "charge", "ch_notthischarge", None, payment, 1000, 59, "USD")
    settles_only(gateway, a_settlement(world, "st_forged", [forged]), [forged])

    assert run(world, gateway, imports)["unknown_references"] == 1
    assert receivable(world) == 1000
    assert world.deps.store.get_share("st_forged") is None


def test_an_adjustment_naming_a_payment_is_never_booked_as_its_capture(world, gateway, imports):
    payment = captured(world, 1000)
    adjustment = SettlementLine("sl_adj1", "adjustment", None, None, payment, 1000, 0, "USD")
    settles_only(gateway, a_settlement(world, "st_adj", [adjustment]), [adjustment])

    counts = run(world, gateway, imports)
    assert (counts["matched"], counts["unknown_references"]) == (0, 1)
    assert receivable(world) == 1000


def test_a_zero_line_naming_a_settled_payment_is_a_mismatch_and_the_settlement_completes(world, gateway, imports):
    first = captured(world, 1000)
    gateway.settle()
    run(world, gateway, imports)
    third = captured(world, 1500)
    lines = [
        SettlementLine("sl_zero1", "charge", charge_of(world, first), None, first, 0, 30, "USD"),
        SettlementLine("sl_zero2", "charge", charge_of(world, third), None, third, 1500, 74, "USD"),
    ]
    settles_only(gateway, a_settlement(world, "st_zero", lines), lines)

    counts = run(world, gateway, imports)
    assert (counts["matched"], counts["mismatched"], counts["deferred"], counts["errors"]) == (1, 1, 0, 0)
    (mismatch,) = world.deps.store.get_share("st_zero").mismatches
    assert (mismatch.reference, mismatch.reason, mismatch.ledger_amount) == (first, MismatchReason.AMOUNT_DIFFERS, 0)
    assert receivable(world) == 0


def test_a_line_in_another_currency_than_its_settlement_is_a_mismatch_out_of_its_totals(world, gateway, imports):
    eur = world.service.create_payment(PaymentCommand(1500, "eur", card=card()), "req", "eur-1").body["id"]
    usd = captured(world, 1000)
    lines = [
        SettlementLine("sl_usd1", "charge", charge_of(world, usd), None, usd, 1000, 59, "USD"),
        SettlementLine("sl_eur1", "charge", charge_of(world, eur), None, eur, 1500, 74, "EUR"),
    ]
    settles_only(gateway, a_settlement(world, "st_mixed", lines), lines)

    run(world, gateway, imports)
    share = world.deps.store.get_share("st_mixed")
    assert (share.gross, share.fees, share.lines) == (1000, 59, 2)
    assert [m.reason for m in share.mismatches] == [MismatchReason.CURRENCY_DIFFERS]


@pytest.mark.parametrize("reference", ["pay_" + "a" * 3000, "=HYPERLINK(1)", "pay_../../x", None])
def test_a_reference_no_service_sends_is_the_operators_without_a_lookup(
    world, gateway, imports, reference, monkeypatch
):
    odd = SettlementLine("sl_odd1", "charge", "ch_odd", None, reference, 1000, 59, "USD")
    settles_only(gateway, a_settlement(world, "st_odd", [odd]), [odd])
    looked_up: list[str] = []
    real_expected = FakeSettlementRecords.expected
    monkeypatch.setattr(
        FakeSettlementRecords, "expected", lambda store, refs: looked_up.extend(refs) or real_expected(store, refs)
    )

    counts = run(world, gateway, imports)
    assert (counts["unknown_references"], counts["settlements"]) == (1, 1)
    assert looked_up == [] and world.deps.store.get_share("st_odd") is None
