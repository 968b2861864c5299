"""Settlements imported and matched against the ledger, on in-memory fakes: what is booked (fees, net to the bank),
once, whatever crashes, retries and concurrent runs; what is a mismatch and whose; what no settlement listed."""

import threading
from collections import Counter
from datetime import timedelta

import pytest

from lambdas.domain import chains
from lambdas.domain.chains import books_break
from lambdas.domain.errors import GatewayFailed
from lambdas.domain.events import EVENT_MISMATCHES, EventType
from lambdas.domain.payments import RECEIVABLE, Direction, Entry
from lambdas.domain.settlements import (
    BANK,
    GATEWAY_FEES,
    NOT_SETTLED_AFTER,
    Expected,
    MismatchReason,
    Settlement,
    SettlementLine,
    compare,
    settlement_entries,
)
from lambdas.use_cases import settlements
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.settlements import COUNTS, UNKNOWN_REFUND_AFTER, import_settlements
from sparkle_sandbox.settlements import fee
from tests.support.fakes import FakeClock, fake_world
from tests.support.fakes_gateway import FakeGateway, Fault
from tests.support.fakes_settlements import FakeSettlementImports
from tests.support.payments import captured, card, pay


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def world(gateway):
    return fake_world(gateway)


@pytest.fixture
def imports(world) -> FakeSettlementImports:
    return FakeSettlementImports(world.db)


def merchants(world):
    return [world.tenancy.dependencies(merchant) for merchant in world.tenancy.directory.merchants()]


def run(world, gateway, imports) -> dict[str, int]:
    return import_settlements(gateway, imports, merchants(world), world.clock)


def counted(**counts: int) -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0) | counts


def all_entries(world) -> list[Entry]:
    return [entry for entries in world.ledger.entries.values() for entry in entries]


def settled_entries(world) -> list[Entry]:
    return [entry for entry in all_entries(world) if entry.settlement_id]


def balances(world) -> dict[tuple[str, str], int]:
    body = world.service.balances().body
    return {(row["account"], row["currency"]): row["amount"] for row in body["balances"]}


def refund(world, payment_id: str, amount: int, key: str) -> str:
    answer = world.service.refund(payment_id, amount, key)
    assert answer.status == 201, answer.body
    return answer.body["id"]


def events_of(world, event_type: EventType) -> list:
    return [event for event in world.ledger.events.values() if event.type is event_type]


# -- what is booked ----------------------------------------------------------------------------------


def test_a_settlement_books_each_fee_and_moves_the_net_to_the_bank(world, gateway, imports):
    first, second = captured(world, 1000), captured(world, 2550)
    refund_id = refund(world, first, 300, "r1")
    (made,) = gateway.settle()

    assert run(world, gateway, imports) == counted(settlements=1, matched=3)

    fees = fee("charge", 1000) + fee("charge", 2550)
    assert fees == 59 + 104  # 2.9 % rounded half up, plus 30
    assert balances(world) == {
        (RECEIVABLE, "USD"): 0,
        ("merchant_balance", "USD"): -(1000 + 2550 - 300),
        (BANK, "USD"): 1000 + 2550 - 300 - fees,
        (GATEWAY_FEES, "USD"): fees,
    }
    share = world.deps.store.get_share(made.id)
    assert (share.gross, share.fees, share.net, share.lines) == (made.gross, made.fees, made.net, 3)
    assert share.status.value == "reconciled" and share.complete and share.mismatches == ()
    refund_entries = [e for e in settled_entries(world) if e.refund_id == refund_id]
    assert {(e.account, e.direction, e.amount) for e in refund_entries} == {
        (RECEIVABLE, Direction.DEBIT, 300),
        (BANK, Direction.CREDIT, 300),
    }  # the gateway takes a refund back from the payout, and keeps no fee for it
    assert {e.payment_id for e in settled_entries(world)} == {first, second}
    (event,) = events_of(world, EventType.SETTLEMENT_RECONCILED)
    assert event.settlement.settlement_id == made.id and event.payment is None


def test_every_settlement_entry_is_a_balanced_movement_on_its_payments_chain(world, gateway, imports):
    payment = captured(world, 1999)
    refund(world, payment, 999, "r")
    gateway.settle()
    run(world, gateway, imports)
    entries = all_entries(world)
    for chain in {entry.chain for entry in entries}:
        on_chain = sorted((e for e in entries if e.chain == chain), key=lambda e: e.sequence)
        assert books_break(chain, on_chain) is None
    # the charge's fee and net (two entries each), the refund's net
    assert Counter(e.settlement_id is not None for e in entries)[True] == 6


def test_a_second_run_changes_nothing(world, gateway, imports):
    captured(world, 1000)
    gateway.settle()
    run(world, gateway, imports)
    entries, events, ledger_balances = len(all_entries(world)), len(world.ledger.events), balances(world)

    assert run(world, gateway, imports) == counted()
    assert (len(all_entries(world)), len(world.ledger.events), balances(world)) == (entries, events, ledger_balances)


def test_each_merchant_sees_only_its_own_share(world, gateway, imports):
    mine = captured(world, 1000)
    theirs_answer = world.other().create_payment(PaymentCommand(2000, "usd", card=card()), "req", "theirs")
    assert theirs_answer.status == 201
    (made,) = gateway.settle()
    run(world, gateway, imports)

    mine_share = world.deps.store.get_share(made.id)
    theirs = merchants(world)[1].store.get_share(made.id)
    assert (mine_share.lines, mine_share.gross) == (1, 1000)
    assert (theirs.lines, theirs.gross) == (1, 2000)
    assert mine_share.gross + theirs.gross == made.gross
    assert all(e.payment_id == mine for e in settled_entries(world))


# -- once, whatever happens ----------------------------------------------------------------------------


def test_a_crash_mid_settlement_resumes_and_books_each_line_once(world, gateway, imports, monkeypatch):
    for amount in (1000, 1100, 1200, 1300, 1400):
        captured(world, amount)
    (made,) = gateway.settle()
    monkeypatch.setattr(settlements, "LINES_PAGE", 2)
    gateway.fail_next("settlement_lines", None, Fault.UNAVAILABLE)  # the second page: after 2 lines were booked
    first = run(world, gateway, imports)
    assert first["matched"] == 2 and first["errors"] == 1 and first["settlements"] == 0
    assert world.deps.store.get_share(made.id).complete is False  # not shown half imported

    assert run(world, gateway, imports) == counted(settlements=1, matched=3)
    assert len(settled_entries(world)) == 5 * 4
    assert balances(world)[(RECEIVABLE, "USD")] == 0


def test_a_crash_before_the_progress_is_kept_books_nothing_twice(world, gateway, imports, monkeypatch):
    for amount in (1000, 1100, 1200):
        captured(world, amount)
    gateway.settle()
    real_advance = imports.advance

    def crash(settlement_id: str, after_line: str) -> None:
        raise RuntimeError("the function was stopped")

    monkeypatch.setattr(imports, "advance", crash)
    assert run(world, gateway, imports)["errors"] == 1
    assert len(settled_entries(world)) == 3 * 4  # booked, its progress lost

    monkeypatch.setattr(imports, "advance", real_advance)
    assert run(world, gateway, imports) == counted(settlements=1)  # every line found recorded before
    assert len(settled_entries(world)) == 3 * 4


def test_two_concurrent_runs_book_each_line_once(world, gateway, imports):
    for amount in range(1000, 1020):
        captured(world, amount)
    gateway.settle()
    start = threading.Barrier(2)
    results: list[dict[str, int]] = []

    def one_run() -> None:
        start.wait()
        results.append(run(world, gateway, imports))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(result["matched"] for result in results) == 20
    assert len(settled_entries(world)) == 20 * 4
    assert balances(world)[(RECEIVABLE, "USD")] == 0
    assert len(events_of(world, EventType.SETTLEMENT_RECONCILED)) == 1


def test_a_line_whose_payment_is_still_pending_waits_for_reconciliation(world, gateway, imports):
    gateway.fail_next("charge", Fault.LOST)
    with pytest.raises(GatewayFailed):
        pay(world, key="lost", amount=1500)
    (made,) = gateway.settle()

    assert run(world, gateway, imports) == counted(deferred=1)
    assert world.deps.store.get_share(made.id) is None

    world.clock.advance(timedelta(minutes=2))
    world.service.reconcile()
    assert run(world, gateway, imports) == counted(settlements=1, matched=1)
    assert balances(world)[(RECEIVABLE, "USD")] == 0


# -- mismatches --------------------------------------------------------------------------------------


def test_an_adjusted_line_is_the_merchants_mismatch_and_is_booked_nowhere(world, gateway, imports):
    kept, adjusted = captured(world, 1000), captured(world, 2000)
    (made,) = gateway.settle(adjust={adjusted: 5})

    assert run(world, gateway, imports) == counted(settlements=1, matched=1, mismatched=1)

    share = world.deps.store.get_share(made.id)
    (mismatch,) = share.mismatches
    assert (mismatch.reference, mismatch.reason) == (adjusted, MismatchReason.AMOUNT_DIFFERS)
    assert (mismatch.ledger_amount, mismatch.gateway_amount) == (2000, 2005)
    assert mismatch.gateway_line is not None
    assert share.status.value == "mismatched" and share.lines == 2 and share.gross == 3005
    assert {e.payment_id for e in settled_entries(world)} == {kept}
    assert balances(world)[(RECEIVABLE, "USD")] == 2000  # still owed, until the mismatch is resolved
    (event,) = events_of(world, EventType.SETTLEMENT_MISMATCH)
    assert event.settlement.mismatches == (mismatch,)


def test_an_unknown_reference_is_the_operators_never_a_merchants(world, gateway, imports):
    captured(world, 1000)
    (made,) = gateway.settle(unknown=2)

    assert run(world, gateway, imports) == counted(settlements=1, matched=1, unknown_references=2)

    share = world.deps.store.get_share(made.id)
    assert share.status.value == "reconciled" and share.lines == 1
    (imported,) = imports.imports(0, made.created)
    assert [m.reason for m in imported.unknown] == [MismatchReason.UNKNOWN_REFERENCE] * 2
    assert all(m.ledger_amount is None and m.gateway_amount == 1000 for m in imported.unknown)
    assert run(world, gateway, imports) == counted()  # kept once


def lost_refund(world, gateway, payment_id: str, amount: int) -> str:
    """A refund the gateway made whose answer was lost: pending in the ledger, which expects nothing of it yet."""
    gateway.fail_next("refund", Fault.LOST)
    with pytest.raises(GatewayFailed) as lost:
        world.service.refund(payment_id, amount, "lost-refund")
    return lost.value.refund_id


def test_a_refund_line_the_ledger_has_not_booked_waits_for_reconciliation(world, gateway, imports):
    payment = captured(world, 1000)
    lost_refund(world, gateway, payment, 400)
    gateway.settle()
    assert run(world, gateway, imports) == counted(matched=1, deferred=1)  # the refund's line, after the charge's

    world.clock.advance(timedelta(minutes=2))
    world.service.reconcile()
    assert run(world, gateway, imports) == counted(settlements=1, matched=1)
    assert balances(world)[(RECEIVABLE, "USD")] == 0


def test_a_refund_line_nobody_expects_for_an_hour_is_the_operators(world, gateway, imports):
    payment = captured(world, 1000)
    refund_id = lost_refund(world, gateway, payment, 400)
    (made,) = gateway.settle()
    run(world, gateway, imports)

    world.clock.advance(UNKNOWN_REFUND_AFTER + timedelta(seconds=1))
    assert run(world, gateway, imports) == counted(settlements=1, unknown_references=1)
    assert [m.reference for m in imports.imports(made.created, made.created)[0].unknown] == [refund_id]


def test_a_payment_no_settlement_listed_within_three_days_is_not_settled(world, gateway, imports):
    listed, dropped = captured(world, 1000), captured(world, 2000)
    (made,) = gateway.settle(drop=(dropped,))
    run(world, gateway, imports)
    world.clock.advance(timedelta(days=2, hours=23))
    assert run(world, gateway, imports)["not_settled"] == 0

    world.clock.advance(timedelta(hours=2))
    assert run(world, gateway, imports) == counted(not_settled=1)
    assert run(world, gateway, imports) == counted()  # reported once

    share = world.deps.store.get_share(made.id)
    (mismatch,) = share.mismatches
    assert (mismatch.reference, mismatch.reason, mismatch.gateway_line) == (dropped, MismatchReason.NOT_SETTLED, None)
    assert (mismatch.ledger_amount, share.status.value) == (2000, "mismatched")
    assert events_of(world, EventType.SETTLEMENT_MISMATCH)[-1].settlement.mismatches == (mismatch,)
    assert listed in {e.payment_id for e in settled_entries(world)}


def usd_settlement(settlement_id: str) -> Settlement:
    return Settlement(settlement_id, "USD", 1_800_000_000, 0, 0, 0, 0)


def test_a_zero_line_for_a_settled_movement_differs_too():
    expected = Expected("pay_1", "pay_1", None, 1000, "USD", FakeClock()(), settled_by="st_1/sl_1")
    zero = SettlementLine("sl_2", "charge", "ch_1", None, "pay_1", 0, 30, "USD")
    assert compare(usd_settlement("st_2"), zero, expected).reason is MismatchReason.AMOUNT_DIFFERS


def test_a_line_listing_a_settled_movement_again_differs_by_its_whole_amount():
    expected = Expected("pay_1", "pay_1", None, 1000, "USD", FakeClock()(), settled_by="st_1/sl_1")
    again = SettlementLine("sl_2", "charge", "ch_1", None, "pay_1", 1000, 59, "USD")
    mismatch = compare(usd_settlement("st_2"), again, expected)
    assert (mismatch.reason, mismatch.ledger_amount, mismatch.gateway_amount) == (
        MismatchReason.AMOUNT_DIFFERS,
        0,
        1000,
    )
    assert (
        compare(
            usd_settlement("st_1"), SettlementLine("sl_1", "charge", "ch_1", None, "pay_1", 1000, 59, "USD"), expected
        )
        is None
    )


def test_a_line_in_another_currency_is_a_currency_mismatch():
    expected = Expected("pay_1", "pay_1", None, 1000, "USD", FakeClock()())
    line = SettlementLine("sl_1", "charge", "ch_1", None, "pay_1", 1000, 59, "EUR")
    mismatch = compare(usd_settlement("st_1"), line, expected)
    assert (mismatch.reason, mismatch.ledger_currency, mismatch.gateway_currency) == (
        MismatchReason.CURRENCY_DIFFERS,
        "USD",
        "EUR",
    )


@pytest.mark.parametrize(("amount", "fee_kept"), [(1000, 59), (-300, 0), (20, 31), (30, 30)])
def test_settlement_entries_balance_and_are_positive(amount, fee_kept):
    expected = Expected("pay_1", "pay_1", None, amount, "USD", FakeClock()())
    line = SettlementLine("sl_1", "charge", "ch_1", None, "pay_1", amount, fee_kept, "USD")
    entries = settlement_entries("st_1", line, expected, FakeClock()())
    assert all(entry.amount > 0 and entry.settlement_id == "st_1" for entry in entries)
    net = {}
    for entry in entries:
        net[entry.account] = net.get(entry.account, 0) + (
            entry.amount if entry.direction is Direction.DEBIT else -entry.amount
        )
    assert sum(net.values()) == 0
    assert net.get(RECEIVABLE, 0) == -amount
    assert net.get(GATEWAY_FEES, 0) == fee_kept
    assert net.get(BANK, 0) == amount - fee_kept


# -- late, listed and waiting movements -------------------------------------------------------------------


def test_a_line_after_the_not_settled_report_still_books_and_its_settlement_completes(world, gateway, imports):
    dropped = captured(world, 2000)
    captured(world, 1000)
    gateway.settle(drop=(dropped,))
    run(world, gateway, imports)
    world.clock.advance(NOT_SETTLED_AFTER + timedelta(hours=1))
    assert run(world, gateway, imports)["not_settled"] == 1

    captured(world, 3000)
    (late,) = gateway.settle()  # lists the dropped payment at last
    assert run(world, gateway, imports) == counted(settlements=1, matched=2)
    assert world.deps.store.get_share(late.id).status.value == "reconciled"
    assert balances(world)[(RECEIVABLE, "USD")] == 0


def test_a_mismatched_line_lists_its_payment_which_is_then_never_not_settled(world, gateway, imports):
    adjusted = captured(world, 2000)
    (made,) = gateway.settle(adjust={adjusted: 5})
    run(world, gateway, imports)
    world.clock.advance(NOT_SETTLED_AFTER + timedelta(hours=1))

    assert run(world, gateway, imports) == counted()
    assert [m.reason for m in world.deps.store.get_share(made.id).mismatches] == [MismatchReason.AMOUNT_DIFFERS]


def test_a_movement_with_no_settlement_of_its_currency_waits_and_hides_no_other(world, gateway, imports, monkeypatch):
    monkeypatch.setattr(chains, "CHAINS", 1)  # every movement on one chain: the waiting one before the others
    eur = world.service.create_payment(PaymentCommand(1500, "eur", card=card()), "req", "eur-1").body["id"]
    captured(world, 1000)
    dropped = captured(world, 2000)
    (usd,) = gateway.settle(drop=(eur, dropped))
    run(world, gateway, imports)
    world.clock.advance(NOT_SETTLED_AFTER + timedelta(hours=1))

    assert run(world, gateway, imports) == counted(not_settled=1, not_settled_waiting=1)
    assert run(world, gateway, imports) == counted(not_settled_waiting=1)  # still waiting; reported once
    share = world.deps.store.get_share(usd.id)
    assert [(m.reference, m.reason) for m in share.mismatches] == [(dropped, MismatchReason.NOT_SETTLED)]


def test_a_settlement_left_unfinished_is_taken_up_again_however_many_follow_it(world, gateway, imports):
    gateway.fail_next("charge", Fault.LOST)
    with pytest.raises(GatewayFailed):
        pay(world, key="lost", amount=1500)
    (waiting,) = gateway.settle()  # its only line waits for reconciliation
    assert run(world, gateway, imports)["deferred"] == 1
    for _ in range(3):
        gateway.advance(settlements.RELIST_SECONDS + 3600)
        captured(world, 1000)
        gateway.settle()
        assert run(world, gateway, imports)["deferred"] == 1

    world.clock.advance(timedelta(minutes=2))
    world.service.reconcile()
    assert run(world, gateway, imports) == counted(settlements=1, matched=1)
    assert world.deps.store.get_share(waiting.id).complete
    assert imports.watermark() == max(s.created for s in gateway.settlements(0))


def test_a_settlement_events_mismatches_are_capped_and_all_are_counted(world, gateway, imports):
    adjusted = [captured(world, 1000 + n) for n in range(EVENT_MISMATCHES + 5)]
    (made,) = gateway.settle(adjust=dict.fromkeys(adjusted, 1))
    run(world, gateway, imports)
    (event,) = events_of(world, EventType.SETTLEMENT_MISMATCH)
    assert len(event.settlement.mismatches) == EVENT_MISMATCHES
    assert event.settlement.mismatch_count == len(world.deps.store.get_share(made.id).mismatches) == len(adjusted)
