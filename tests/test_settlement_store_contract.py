"""One contract for the settlement records (``lambdas.ports.SettlementRecords``, ``SettlementImports``), run against
the in-memory fakes and the DynamoDB adapters (moto in process): a line recorded and counted once, a movement settled
by one line, reported not settled only while no line settled or listed it (a late line still settles it), a
mismatched line's mark never in its way, a share shown once complete, the cursor moved by one run at a time,
a chain read up to its first gap, no merchant seeing another's records; and the operator's imports, begun once, with
a watermark that only its own call moves, never down."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import boto3
import pytest

from lambdas.adapters.envelope import EnvelopeCipher
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.adapters.settlement_imports import DynamoSettlementImports
from lambdas.domain.cards import MaskedCard
from lambdas.domain.chains import chain_of
from lambdas.domain.payments import RECEIVABLE, Direction, Entry, Payment
from lambdas.domain.settlements import (
    BANK,
    GATEWAY_FEES,
    Expected,
    Mismatch,
    MismatchReason,
    Settlement,
    SettlementLine,
    Share,
    ShareLine,
    compare,
    expected_of,
    line_key,
    not_settled,
    settlement_entries,
    unknown,
)
from lambdas.encryption_context import Purpose
from lambdas.ports import LostRace, SettlementCursor
from lambdas.storage_schema import to_item
from tests.support.fakes import FakeClock, FakeDatabase, FakeLedgerStore
from tests.support.fakes_settlements import FakeSettlementImports

CARD = MaskedCard("visa", "4242", 12, 2030, "fp_1")
CREATED = 1_795_000_000  # a settlement's created (unix seconds)


@dataclass
class Stores:
    store: Any  # a LedgerStore, of the fakes or of DynamoDB
    other: Any  # another merchant's, on the same table
    imports: Callable[[], Any]  # the operator's record (SettlementImports), as a new function instance opens it
    put_entry: Callable[[Entry], None]  # an entry put as it is, beside the store's writes (a gap in its chain)
    clock: FakeClock


@pytest.fixture(params=["fake", pytest.param("dynamodb", marks=pytest.mark.integration)])
def stores(request) -> Stores:
    clock = FakeClock()
    if request.param == "fake":
        db = FakeDatabase()

        def put_fake(entry: Entry) -> None:
            with db.lock:
                db.ledger("merchant-a").entries.setdefault(entry.payment_id, []).append(entry)

        store, other = FakeLedgerStore(db, "merchant-a"), FakeLedgerStore(db, "merchant-b")
        return Stores(store, other, lambda: FakeSettlementImports(db), put_fake, clock)
    env = request.getfixturevalue("moto_resources")
    dynamodb, kms = boto3.client("dynamodb"), boto3.client("kms")
    metadata = EnvelopeCipher(kms, env["VAULT_KEY_ID"], Purpose.METADATA)
    table = env["LEDGER_TABLE"]
    dynamo_store = DynamoLedgerStore(dynamodb, table, metadata, "merchant-a", page_size=3)

    def put_dynamo(entry: Entry) -> None:
        dynamodb.put_item(TableName=table, Item=to_item(dynamo_store.chains.entry_item(0, entry)))

    return Stores(
        dynamo_store,
        DynamoLedgerStore(dynamodb, table, metadata, "merchant-b", page_size=3),
        lambda: DynamoSettlementImports(dynamodb, table),
        put_dynamo,
        clock,
    )


def commit(store, *adds) -> None:
    uow = store.unit_of_work()
    for add in adds:
        add(uow)
    uow.commit()


def captured(stores: Stores, amount: int = 1000, chain: int | None = None) -> tuple[Payment, Expected]:
    """A payment captured through the store (its entries on its chain), on ``chain`` when given, and the movement
    its ledger expects a settlement to list, kept."""
    payment_id = f"pay_{uuid.uuid4().hex[:24]}"
    while chain is not None and chain_of(payment_id) != chain:
        payment_id = f"pay_{uuid.uuid4().hex[:24]}"
    new = Payment(payment_id, amount, "USD", CARD, stores.clock())
    commit(stores.store, lambda uow: stores.store.add_payment(uow, new))
    settled, entries = new.succeed("ch_1", stores.clock())
    commit(stores.store, lambda uow: stores.store.settle_payment(uow, new, settled, entries))
    (expected,) = [movement for movement in map(expected_of, entries) if movement]
    expected = replace(expected, gateway_id="ch_1")
    stores.store.add_expected([expected])
    return settled, expected


def settlement(created: int = CREATED, currency: str = "USD") -> Settlement:
    return Settlement(f"st_{uuid.uuid4().hex[:24]}", currency, created, 0, 0, 0, 0)


def gateway_line(reference: str, amount: int, fee: int = 30, currency: str = "USD") -> SettlementLine:
    return SettlementLine(f"sl_{uuid.uuid4().hex[:24]}", "charge", "ch_1", None, reference, amount, fee, currency)


def book(stores: Stores, made: Settlement, line: SettlementLine, expected: Expected) -> None:
    """The line recorded as the import records it, naming its movement: settling it with its entries, or listing it
    as a mismatch."""
    mismatch = compare(made, line, expected)
    share_line = ShareLine.of(made, line, mismatch)
    entries = [] if mismatch else settlement_entries(made.id, line, expected, stores.clock())
    commit(stores.store, lambda uow: stores.store.add_share_line(uow, made, share_line, expected, entries))


def report(stores: Stores, made: Settlement, expected: Expected) -> None:
    commit(stores.store, lambda uow: stores.store.add_not_settled(uow, made, expected, not_settled(expected)))


def complete(stores: Stores, made: Settlement) -> None:
    share = stores.store.get_share(made.id) or Share(made.id, made.currency, made.created_at)
    commit(stores.store, lambda uow: stores.store.complete_share(uow, share))


def totals(share: Share) -> tuple[int, int, int, int]:
    return share.gross, share.fees, share.lines, share.mismatch_count


# -- lines and the movements they settle ------------------------------------------------------------


def test_a_matched_line_settles_its_movement_and_books_its_fee_and_net_on_the_chain(stores):
    payment, expected = captured(stores, 1000)
    made, line = settlement(), gateway_line(payment.id, 1000, fee=30)
    book(stores, made, line, expected)
    assert stores.store.expected([payment.id])[payment.id].settled_by == line_key(made.id, line.id)
    booked = [e for e in stores.store.entries(payment.id) if e.settlement_id == made.id]
    assert {(e.account, e.direction, e.amount) for e in booked} == {
        (GATEWAY_FEES, Direction.DEBIT, 30),
        (RECEIVABLE, Direction.CREDIT, 30),
        (BANK, Direction.DEBIT, 970),
        (RECEIVABLE, Direction.CREDIT, 970),
    }
    (head,) = [h for h in stores.store.heads() if h.chain == chain_of(payment.id)]
    assert head.sequence == 6 and head.balances[(RECEIVABLE, "USD")] == 0
    share = stores.store.get_share(made.id)
    assert totals(share) == (1000, 30, 1, 0) and share.mismatches == () and not share.complete


def test_a_line_is_recorded_and_counted_once_whatever_the_reruns(stores):
    payment, expected = captured(stores, 1000)
    made, line = settlement(), gateway_line(payment.id, 990, fee=20)  # differs: a mismatch, no movement settled
    book(stores, made, line, expected)
    for _ in range(2):
        with pytest.raises(LostRace) as race:
            book(stores, made, line, expected)
        assert set(race.value.conflicts) == {"line"}
        assert race.value.conflicts["line"].mismatch.reason is MismatchReason.AMOUNT_DIFFERS
    share = stores.store.get_share(made.id)
    assert totals(share) == (990, 20, 1, 1)
    assert share.mismatches == (Mismatch(payment.id, line.id, MismatchReason.AMOUNT_DIFFERS, 1000, 990, "USD", "USD"),)
    kept = stores.store.expected([payment.id])[payment.id]
    assert kept.settled_by is None and kept.listed_by == line_key(made.id, line.id)


def test_a_matched_line_recorded_again_books_nothing_more(stores):
    payment, expected = captured(stores, 1000)
    made, line = settlement(), gateway_line(payment.id, 1000)
    book(stores, made, line, expected)
    settled = stores.store.expected([payment.id])[payment.id]
    with pytest.raises(LostRace) as race:
        book(stores, made, line, settled)  # a rerun compares with the movement as it now reads: settled by this line
    assert "line" in race.value.conflicts
    assert len(stores.store.entries(payment.id)) == 6 and totals(stores.store.get_share(made.id)) == (1000, 30, 1, 0)


def test_a_movement_is_settled_by_one_line_only(stores):
    payment, expected = captured(stores, 1000)
    made = settlement()
    first, second = gateway_line(payment.id, 1000), gateway_line(payment.id, 1000)
    book(stores, made, first, expected)
    with pytest.raises(LostRace) as race:
        book(stores, made, second, expected)  # compared with the movement as read before the first settled it
    assert set(race.value.conflicts) == {"expected"}
    assert race.value.conflicts["expected"].settled_by == line_key(made.id, first.id)
    assert totals(stores.store.get_share(made.id)) == (1000, 30, 1, 0)  # nothing of the second line was written
    assert len(stores.store.entries(payment.id)) == 6


def test_a_settled_movement_is_never_reported_not_settled(stores):
    payment, expected = captured(stores)
    made, later = settlement(), settlement(CREATED + 86400)
    book(stores, made, gateway_line(payment.id, 1000), expected)
    with pytest.raises(LostRace) as race:
        report(stores, later, expected)
    assert race.value.conflicts["expected"].settled_by is not None
    assert stores.store.get_share(later.id) is None


def test_a_movement_is_reported_not_settled_once_and_a_late_line_still_settles_it(stores):
    payment, expected = captured(stores)
    reported_in, late = settlement(), settlement(CREATED + 86400)
    report(stores, reported_in, expected)
    with pytest.raises(LostRace) as race:
        report(stores, settlement(CREATED + 60), expected)
    assert set(race.value.conflicts) == {"expected"}
    line = gateway_line(payment.id, 1000)
    book(stores, late, line, expected)  # compared with the movement as read before the report: it books all the same
    assert stores.store.expected([payment.id])[payment.id].settled_by == line_key(late.id, line.id)
    assert len(stores.store.entries(payment.id)) == 6
    assert totals(stores.store.get_share(late.id)) == (1000, 30, 1, 0)
    share = stores.store.get_share(reported_in.id)
    assert share.mismatches == (not_settled(expected),) and share.mismatch_count == 1


def test_a_movement_a_mismatched_line_listed_is_never_reported_not_settled(stores):
    payment, expected = captured(stores, 1000)
    made, later = settlement(), settlement(CREATED + 86400)
    line = gateway_line(payment.id, 900)
    book(stores, made, line, expected)
    with pytest.raises(LostRace) as race:
        report(stores, later, expected)  # compared with the movement as read before the line listed it
    assert set(race.value.conflicts) == {"expected"}
    assert race.value.conflicts["expected"].listed_by == line_key(made.id, line.id)
    assert stores.store.get_share(later.id) is None
    assert totals(stores.store.get_share(made.id)) == (900, 30, 1, 1)


def test_a_mismatched_line_is_recorded_whatever_the_movement_it_names_went_through(stores):
    settled_payment, settled = captured(stores, 1000)
    reported_payment, reported = captured(stores, 500)
    first, second = settlement(), settlement(CREATED + 86400)
    settling = gateway_line(settled_payment.id, 1000)
    book(stores, first, settling, settled)
    report(stores, first, reported)
    differing = gateway_line(settled_payment.id, 10)
    book(stores, second, differing, settled)  # differs, compared with the movement read before a line settled it
    again = gateway_line(settled_payment.id, 1000)
    book(stores, second, again, stores.store.expected([settled.reference])[settled.reference])  # settled: all differs
    late = gateway_line(reported_payment.id, 499)
    book(stores, second, late, reported)  # differs from a movement reported not settled
    kept = stores.store.expected([settled.reference, reported.reference])
    assert kept[settled.reference].settled_by == line_key(first.id, settling.id)
    assert kept[settled.reference].listed_by == line_key(second.id, differing.id)  # the first to differ stays
    assert kept[reported.reference].listed_by == line_key(second.id, late.id)
    assert kept[reported.reference].settled_by is None
    share = stores.store.get_share(second.id)
    assert totals(share) == (1509, 90, 3, 3)
    assert {(m.gateway_line, m.ledger_amount, m.gateway_amount) for m in share.mismatches} == {
        (differing.id, 1000, 10),
        (again.id, 0, 1000),
        (late.id, 500, 499),
    }
    assert len(stores.store.entries(settled_payment.id)) == 6 and len(stores.store.entries(reported_payment.id)) == 2


def test_a_movement_never_kept_is_settled_by_no_line(stores):
    payment = Payment("pay_unknown", 1000, "USD", CARD, stores.clock())
    ghost = Expected(payment.id, payment.id, None, 1000, "USD", stores.clock())
    with pytest.raises(LostRace) as race:
        book(stores, settlement(), gateway_line(payment.id, 1000), ghost)
    assert race.value.conflicts == {"expected": None}


# -- expected movements -------------------------------------------------------------------------------


def test_an_expected_movement_is_kept_once_as_first_kept_and_read_in_batches(stores):
    def kept(n: int) -> Expected:
        return Expected(f"pay_{n:04d}", f"pay_{n:04d}", None, 100 + n, "USD", stores.clock(), gateway_id=f"ch_{n}")

    movements = [kept(n) for n in range(130)]
    stores.store.add_expected(movements)
    stores.store.add_expected([Expected("pay_0001", "pay_0001", None, 999, "EUR", stores.clock())])
    references = [m.reference for m in movements] + ["pay_0001", "pay_missing"]
    found = stores.store.expected(references)
    assert found == {m.reference: m for m in movements}
    refund = Expected("re_1", "pay_0002", "re_1", -50, "USD", stores.clock(), "re_gw", "st_1/sl_1", "st_2/sl_2")
    stores.store.add_expected([refund])
    assert stores.store.expected(["re_1"]) == {"re_1": refund}
    bare = Expected("re_2", "pay_0002", "re_2", -50, "USD", stores.clock())
    stores.store.add_expected([bare])
    assert stores.store.expected(["re_2"]) == {"re_2": bare}


def test_keeping_a_settled_movement_again_leaves_it_settled(stores):
    payment, expected = captured(stores)
    made, line = settlement(), gateway_line(payment.id, 1000)
    book(stores, made, line, expected)
    stores.store.add_expected([expected])  # a walk that read its entry again
    assert stores.store.expected([payment.id])[payment.id].settled_by == line_key(made.id, line.id)


# -- shares ---------------------------------------------------------------------------------------------


def test_a_share_is_shown_once_complete_with_its_mismatches_lines_first(stores):
    first, first_expected = captured(stores, 1000)
    second, second_expected = captured(stores, 2000)
    _, unsettled_expected = captured(stores, 500)
    made = settlement()
    book(stores, made, gateway_line(first.id, 1000), first_expected)
    book(stores, made, gateway_line(second.id, 2100, fee=60), second_expected)
    report(stores, made, unsettled_expected)  # into a share still being imported: not shown yet
    assert stores.store.list_shares(10, None) == ([], False)
    complete(stores, made)
    share = stores.store.get_share(made.id)
    assert share.complete and totals(share) == (3100, 90, 2, 2) and share.net == 3010
    assert [m.reason for m in share.mismatches] == [MismatchReason.AMOUNT_DIFFERS, MismatchReason.NOT_SETTLED]
    assert share.mismatches[1] == not_settled(unsettled_expected)
    listed, more = stores.store.list_shares(10, None)
    assert listed == [Share(made.id, "USD", made.created_at, 3100, 90, 2, 2, (), True)] and not more
    with pytest.raises(LostRace) as race:
        complete(stores, made)
    assert set(race.value.conflicts) == {"share"} and race.value.conflicts["share"].complete


def test_not_settled_in_a_settlement_with_no_share_makes_one_shown_at_once(stores):
    _, expected = captured(stores, 700)
    made = settlement()
    report(stores, made, expected)
    share = stores.store.get_share(made.id)
    assert share == Share(made.id, "USD", made.created_at, 0, 0, 0, 1, (not_settled(expected),), True)
    assert stores.store.list_shares(10, None) == ([Share(made.id, "USD", made.created_at, 0, 0, 0, 1, (), True)], False)


def test_not_settled_in_a_complete_share_is_counted_in_it(stores):
    payment, expected = captured(stores, 1000)
    _, late_expected = captured(stores, 400)
    made = settlement()
    book(stores, made, gateway_line(payment.id, 1000), expected)
    complete(stores, made)
    report(stores, made, late_expected)
    share = stores.store.get_share(made.id)
    assert share.complete and totals(share) == (1000, 30, 1, 1) and share.mismatches == (not_settled(late_expected),)


def test_shares_are_listed_newest_first_complete_only_page_by_page(stores):
    made = [settlement(CREATED + n * 3600) for n in range(5)]
    same_second = settlement(CREATED + 4 * 3600)
    for each in (*made, same_second):
        payment, expected = captured(stores, 100)
        book(stores, each, gateway_line(payment.id, 100, fee=1), expected)
    for each in (*made[:4], same_second):  # the newest of ``made`` is still being imported
        complete(stores, each)
    _, late = captured(stores, 5)
    report(stores, made[4], late)  # a not_settled in it: still not shown
    newest_first = [same_second.id, *(m.id for m in reversed(made[:4]))]
    pages, after, more = [], None, True
    while more:
        page, more = stores.store.list_shares(2, after)
        pages.append([share.settlement_id for share in page])
        after = page[-1]
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    assert all(share.mismatches == () for share in stores.store.list_shares(10, None)[0])


def test_shares_created_in_the_same_second_are_listed_by_id(stores):
    made = sorted((settlement(CREATED) for _ in range(3)), key=lambda s: s.id)
    for each in made:
        complete(stores, each)
    listed, _ = stores.store.list_shares(10, None)
    assert [share.settlement_id for share in listed] == [m.id for m in reversed(made)]
    page, more = stores.store.list_shares(1, listed[0])
    assert [share.settlement_id for share in page] == [made[1].id] and more


# -- the cursor and the chains ------------------------------------------------------------------------


def test_the_cursor_moves_from_the_version_it_was_read_at_only(stores):
    start = stores.store.settlement_cursor()
    assert start == SettlementCursor({}, {}, 0)
    walked = SettlementCursor({3: 10, 12: 4}, {})
    assert stores.store.move_settlement_cursor(start, walked)
    assert not stores.store.move_settlement_cursor(start, SettlementCursor({3: 99}, {}))  # another run moved it
    now = stores.store.settlement_cursor()
    assert now == SettlementCursor({3: 10, 12: 4}, {}, 1)
    assert stores.store.move_settlement_cursor(now, SettlementCursor(now.walked, {3: 8}))
    assert not stores.store.move_settlement_cursor(now, SettlementCursor({}, {}))
    assert stores.store.settlement_cursor() == SettlementCursor({3: 10, 12: 4}, {3: 8}, 2)


def test_a_chain_is_read_in_sequence_up_to_its_first_gap(stores):
    first, _ = captured(stores, 100)
    chain = chain_of(first.id)
    second, _ = captured(stores, 200, chain=chain)
    entries = stores.store.chain_entries(chain, 0, 100)
    assert [e.sequence for e in entries] == [1, 2, 3, 4]
    assert {e.payment_id for e in entries[2:]} == {second.id}
    assert [e.sequence for e in stores.store.chain_entries(chain, 1, 2)] == [2, 3]
    assert stores.store.chain_entries(chain, 4, 100) == []

    def stray(sequence: int) -> Entry:
        return Entry(f"le_{sequence}", second.id, "merchant_balance", Direction.CREDIT, 1, "USD",
                     stores.clock(), chain=chain, sequence=sequence, hash="0" * 64)  # fmt: skip

    stores.put_entry(stray(6))  # its index shows it before the entry at 5
    assert [e.sequence for e in stores.store.chain_entries(chain, 0, 100)] == [1, 2, 3, 4]
    assert stores.store.chain_entries(chain, 4, 100) == []
    stores.put_entry(stray(5))
    assert [e.sequence for e in stores.store.chain_entries(chain, 3, 100)] == [4, 5, 6]


# -- merchants --------------------------------------------------------------------------------------------


def test_another_merchant_sees_none_of_the_merchants_settlement_records(stores):
    payment, expected = captured(stores)
    made = settlement()
    book(stores, made, gateway_line(payment.id, 1000), expected)
    complete(stores, made)
    stores.store.move_settlement_cursor(stores.store.settlement_cursor(), SettlementCursor({1: 2}, {}))
    assert stores.other.expected([payment.id]) == {}
    assert stores.other.get_share(made.id) is None
    assert stores.other.list_shares(10, None) == ([], False)
    assert stores.other.settlement_cursor() == SettlementCursor({}, {}, 0)
    assert stores.other.chain_entries(chain_of(payment.id), 0, 100) == []
    with pytest.raises(LostRace) as race:  # the other merchant cannot settle the merchant's movement
        commit(
            stores.other,
            lambda uow: stores.other.add_not_settled(uow, settlement(), expected, not_settled(expected)),
        )
    assert race.value.conflicts == {"expected": None}


# -- the operator's imports ---------------------------------------------------------------------------------


def test_an_import_is_begun_once_and_keeps_when_it_was_first_seen_and_how_far_it_got(stores):
    imports = stores.imports()
    made = Settlement("st_1", "USD", CREATED, 1000, 30, 970, 1)
    first_seen = stores.clock()
    begun = imports.begin(made, first_seen)
    assert (begun.settlement, begun.first_seen_at, begun.after_line, begun.done, begun.unknown) == (
        made,
        first_seen,
        None,
        False,
        (),
    )
    stores.clock.advance(timedelta(hours=2))
    imports.advance("st_1", "sl_5")
    again = stores.imports().begin(Settlement("st_1", "USD", CREATED, 1, 1, 0, 9), stores.clock())  # fmt: skip
    assert (again.settlement, again.first_seen_at, again.after_line) == (made, first_seen, "sl_5")
    stores.imports().advance("st_1", "sl_7")  # a new instance finds it by its id
    assert imports.begin(made, stores.clock()).after_line == "sl_7"
    with pytest.raises(KeyError):
        stores.imports().advance("st_never", "sl_1")
    with pytest.raises(KeyError):
        stores.imports().finish(Settlement("st_never", "USD", CREATED, 0, 0, 0, 0))
    assert stores.imports().watermark() == 0


def test_an_unknown_line_is_kept_once_and_attached_to_its_import(stores):
    imports = stores.imports()
    made = Settlement("st_2", "EUR", CREATED, 0, 0, 0, 2)
    imports.begin(made, stores.clock())
    line = SettlementLine("sl_9", "charge", "ch_x", None, "pay_nobody", 500, 15, "EUR")
    assert imports.add_unknown("st_2", unknown(line))
    assert not imports.add_unknown("st_2", unknown(line))
    (listed,) = imports.imports(CREATED, CREATED)
    assert listed.unknown == (unknown(line),)
    assert stores.imports().begin(made, stores.clock()).unknown == (unknown(line),)


def test_the_newest_done_is_found_by_currency_and_finishing_leaves_the_watermark(stores):
    imports = stores.imports()
    assert imports.watermark() == 0 and imports.newest_done("USD") is None
    old, new, newer_eur, newest_open = (
        Settlement("st_old", "USD", CREATED, 0, 0, 0, 0),
        Settlement("st_new", "USD", CREATED + 100, 0, 0, 0, 0),
        Settlement("st_eur", "EUR", CREATED + 200, 0, 0, 0, 0),
        Settlement("st_open", "USD", CREATED + 300, 0, 0, 0, 0),
    )
    for made in (old, new, newer_eur, newest_open):
        imports.begin(made, stores.clock())
    imports.finish(new)
    assert imports.newest_done("USD") == new and stores.imports().watermark() == 0
    imports.finish(old)  # an older one finished later
    imports.finish(newer_eur)
    assert imports.newest_done("USD") == new and imports.newest_done("EUR") == newer_eur
    assert imports.newest_done("GBP") is None and stores.imports().watermark() == 0
    done = {i.settlement.id: i.done for i in imports.imports(0, CREATED + 10**6)}
    assert done == {"st_old": True, "st_new": True, "st_eur": True, "st_open": False}


def test_the_watermark_moves_up_only(stores):
    imports = stores.imports()
    imports.raise_watermark(CREATED + 100)
    assert imports.watermark() == CREATED + 100
    imports.raise_watermark(CREATED)  # a run that read an older watermark
    assert stores.imports().watermark() == CREATED + 100
    stores.imports().raise_watermark(CREATED + 100)
    assert imports.watermark() == CREATED + 100
    imports.raise_watermark(CREATED + 200)
    assert stores.imports().watermark() == CREATED + 200


def test_imports_are_listed_oldest_first_within_their_range(stores):
    imports = stores.imports()
    made = [Settlement(f"st_{n}", "USD", CREATED + n, 0, 0, 0, 0) for n in (3, 1, 2, 5)]
    for each in made:
        imports.begin(each, stores.clock())
    imports.finish(made[0])
    imports.raise_watermark(CREATED + 3)  # the watermark sorts beside them: it is never listed
    assert [i.settlement.id for i in imports.imports(CREATED + 1, CREATED + 3)] == ["st_1", "st_2", "st_3"]
    assert [i.settlement.id for i in imports.imports(CREATED + 4, CREATED + 4)] == []
    assert [i.settlement.id for i in stores.imports().imports(0, CREATED + 5)] == ["st_1", "st_2", "st_3", "st_5"]
