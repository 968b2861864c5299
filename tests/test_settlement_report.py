"""`make settlement-report`: each settlement's gateway sums and matched lines, every mismatch with what each side
says and whose it is, the totals per currency, the CSV export, and the days it covers."""

import csv
import io
from datetime import UTC, date, datetime

import boto3
import pytest

from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.adapters.settlement_imports import DynamoSettlementImports
from lambdas.domain.settlements import (
    Expected,
    MismatchReason,
    Settlement,
    SettlementLine,
    Share,
    ShareLine,
    compare,
    not_settled,
    unknown,
)
from lambdas.ports import SettlementImport
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.settlements import import_settlements
from tests.support.fakes import FakeLedgerStore, fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.fakes_settlements import FakeSettlementImports
from tests.support.payments import captured, card
from tools.settlement_report import (
    CSV_COLUMNS,
    OPERATOR,
    Owned,
    _parse,
    day_range,
    main,
    read,
    render,
    summarise,
    totals,
    write_csv,
)

CREATED = int(datetime(2026, 12, 8, 2, 0, tzinfo=UTC).timestamp())
AT = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
SUCCEEDED = datetime(2026, 12, 1, tzinfo=UTC)


def line(line_id: str, reference: str | None, amount: int, fee: int = 0, currency: str = "USD") -> SettlementLine:
    return SettlementLine(line_id, "charge" if amount > 0 else "refund", None, None, reference, amount, fee, currency)


def settlement(settlement_id: str, lines: list[SettlementLine], currency: str = "USD", created: int = CREATED):
    gross, fees = sum(x.amount for x in lines), sum(x.fee for x in lines)
    return Settlement(settlement_id, currency, created, gross, fees, gross - fees, len(lines))


def share_of(found: Settlement, *lines: ShareLine, not_settled_too: tuple[Expected, ...] = ()) -> Share:
    """The merchant's share as the import builds it: line by line, then the movements no settlement listed."""
    share = Share(found.id, found.currency, AT, complete=True)
    for added in lines:
        share = share.with_line(added)
    for expected in not_settled_too:
        share = share.with_mismatch(not_settled(expected))
    return share


# A settlement of five lines: merchant m_a's two match, m_b's first matches and its second is 5 over what m_b's
# ledger says; the fifth is a line nobody knows. m_b also has a refund no settlement listed in 3 days.
MATCHED_A1, MATCHED_A2 = line("sl_a1", "pay_a1", 1000, 59), line("sl_a2", "re_a2", -200)
MATCHED_B1, ADJUSTED_B2 = line("sl_b1", "pay_b1", 3000, 117), line("sl_b2", "pay_b2", 2004, 88)
UNKNOWN = line("sl_x", "pay_nobody", 700, 50)
MIXED = settlement("st_mixed", [MATCHED_A1, MATCHED_A2, MATCHED_B1, ADJUSTED_B2, UNKNOWN])
B2_EXPECTED = Expected("pay_b2", "pay_b2", None, 1999, "USD", SUCCEEDED)
B2_DIFFERS = compare(MIXED, ADJUSTED_B2, B2_EXPECTED)
REFUND_UNSETTLED = Expected("re_b3", "pay_b3", "re_b3", -500, "USD", SUCCEEDED)


def shared(*lines: SettlementLine, mismatched: dict | None = None) -> list[ShareLine]:
    mismatched = mismatched or {}
    return [ShareLine(x.id, x.reference, x.amount, x.fee, mismatched.get(x.id)) for x in lines]


SHARE_A = share_of(MIXED, *shared(MATCHED_A1, MATCHED_A2))
SHARE_B = share_of(MIXED, *shared(MATCHED_B1, ADJUSTED_B2, mismatched={"sl_b2": B2_DIFFERS}),
                   not_settled_too=(REFUND_UNSETTLED,))  # fmt: skip
MIXED_IMPORT = SettlementImport(MIXED, AT, "sl_x", done=True, unknown=(unknown(UNKNOWN),))


def test_a_settlement_sums_as_the_gateway_says_and_counts_the_lines_that_matched():
    (summary,) = summarise([MIXED_IMPORT], [("m_b", SHARE_B), ("m_a", SHARE_A)])
    assert (summary.settlement.gross, summary.settlement.fees, summary.settlement.net) == (6504, 314, 6190)
    assert summary.matched == 3 and summary.done and summary.unaccounted == 0


def test_every_mismatch_is_listed_with_its_owner_merchants_first_then_the_operators():
    (summary,) = summarise([MIXED_IMPORT], [("m_b", SHARE_B), ("m_a", SHARE_A)])
    assert summary.mismatches == (
        Owned("m_b", B2_DIFFERS),
        Owned("m_b", not_settled(REFUND_UNSETTLED)),
        Owned(OPERATOR, unknown(UNKNOWN)),
    )
    assert [o.mismatch.reason for o in summary.mismatches] == [
        MismatchReason.AMOUNT_DIFFERS, MismatchReason.NOT_SETTLED, MismatchReason.UNKNOWN_REFERENCE
    ]  # fmt: skip


def test_settlements_keep_the_imports_order_and_shares_of_other_settlements_are_left_out():
    only_unknown = settlement("st_unknown", [UNKNOWN], created=CREATED + 60)
    kept = [MIXED_IMPORT, SettlementImport(only_unknown, AT, "sl_x", done=True, unknown=(unknown(UNKNOWN),))]
    elsewhere = share_of(settlement("st_elsewhere", [MATCHED_A1]), *shared(MATCHED_A1))
    summaries = summarise(kept, [("m_a", elsewhere), ("m_a", SHARE_A), ("m_b", SHARE_B)])
    assert [s.settlement.id for s in summaries] == ["st_mixed", "st_unknown"]
    assert (summaries[1].matched, len(summaries[1].mismatches), summaries[1].unaccounted) == (0, 1, 0)


def test_lines_of_no_merchant_read_are_flagged_once_the_import_is_done():
    """m_b is not in the merchants table any more: its two lines are neither a known merchant's nor the operator's."""
    (summary,) = summarise([MIXED_IMPORT], [("m_a", SHARE_A)])
    assert summary.unaccounted == 2
    assert "done, 2 lines of no known merchant" in render([summary], date(2026, 12, 8), date(2026, 12, 8))


def test_a_settlement_still_importing_says_so():
    importing = SettlementImport(MIXED, AT, "sl_a2")
    (summary,) = summarise([importing], [("m_a", SHARE_A)])
    assert not summary.done and "importing" in render([summary], date(2026, 12, 8), date(2026, 12, 8))


def test_the_report_shows_what_each_side_says_of_each_mismatch_in_aligned_columns():
    text = render(summarise([MIXED_IMPORT], [("m_a", SHARE_A), ("m_b", SHARE_B)]), date(2026, 12, 1), date(2026, 12, 8))
    assert text.startswith("Settlements created 2026-12-01 to 2026-12-08 (UTC): 1; amounts in minor units\n")
    rows = text.splitlines()
    (differs,) = [r for r in rows if "amount_differs" in r]
    assert differs.split() == ["st_mixed", "m_b", "pay_b2", "sl_b2", "amount_differs", "1999", "USD", "2004", "USD"]
    (unsettled,) = [r for r in rows if "not_settled" in r]
    assert unsettled.split() == ["st_mixed", "m_b", "re_b3", "-", "not_settled", "-500", "USD", "-"]
    (nobodys,) = [r for r in rows if "unknown_reference" in r]
    assert nobodys.split() == ["st_mixed", OPERATOR, "pay_nobody", "sl_x", "unknown_reference", "-", "700", "USD"]
    header = next(r for r in rows if r.startswith("settlement  owner"))
    for row in (differs, unsettled, nobodys):  # each value starts under its header
        for column in ("owner", "reference", "line", "reason", "ledger says", "gateway says"):
            assert row[header.index(column) - 2 : header.index(column)] == "  " and row[header.index(column)] != " "
    summary_header = next(r for r in rows if r.startswith("settlement  created"))
    (summary_row,) = [r for r in rows if r.startswith("st_mixed") and "2026-12-08 02:00" in r]
    assert summary_row.split()[4:11] == ["6504", "314", "6190", "5", "3", "3", "done"]
    for column in ("gross", "fees", "net", "matched"):  # numbers are right-aligned under their header
        end = summary_header.index(column) + len(column)
        assert summary_row[end - 1] != " " and summary_row[end] == " "


def test_totals_are_per_currency():
    euros = settlement("st_eur", [line("sl_e", "pay_e", 5000, 175, "EUR")], currency="EUR")
    summaries = summarise([MIXED_IMPORT, SettlementImport(euros, AT, "sl_e", done=True)], [("m_a", SHARE_A)])
    assert [(t.currency, t.settlements, t.gross, t.fees, t.net) for t in totals(summaries)] == [
        ("EUR", 1, 5000, 175, 4825), ("USD", 1, 6504, 314, 6190)
    ]  # fmt: skip
    text = render(summaries, date(2026, 12, 8), date(2026, 12, 8))
    assert text.splitlines()[-2].split() == ["EUR", "1", "5000", "175", "4825", "0", "0"]


def test_no_settlement_in_the_days_is_one_line():
    assert render([], date(2026, 12, 1), date(2026, 12, 2)) == (
        "Settlements created 2026-12-01 to 2026-12-02 (UTC): 0; amounts in minor units\n"
    )


def test_the_csv_has_one_row_per_settlement_and_one_per_mismatch_named_in_a_column():
    out = io.StringIO()
    write_csv(summarise([MIXED_IMPORT], [("m_a", SHARE_A), ("m_b", SHARE_B)]), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert out.getvalue().splitlines()[0] == ",".join(CSV_COLUMNS)
    assert [r["row"] for r in rows] == ["settlement", "mismatch", "mismatch", "mismatch"]
    assert {k: rows[0][k] for k in ("settlement", "currency", "gross", "fees", "net", "lines", "matched")} == {
        "settlement": "st_mixed", "currency": "USD", "gross": "6504", "fees": "314", "net": "6190", "lines": "5",
        "matched": "3"
    }  # fmt: skip
    assert rows[0]["created_at"] == "2026-12-08T02:00:00+00:00" and rows[0]["mismatches"] == "3"
    sides = [(r["owner"], r["reference"], r["gateway_line"], r["reason"], r["ledger_amount"], r["ledger_currency"],
              r["gateway_amount"], r["gateway_currency"]) for r in rows[1:]]  # fmt: skip
    assert sides == [
        ("m_b", "pay_b2", "sl_b2", "amount_differs", "1999", "USD", "2004", "USD"),
        ("m_b", "re_b3", "", "not_settled", "-500", "USD", "", ""),
        (OPERATOR, "pay_nobody", "sl_x", "unknown_reference", "", "", "700", "USD"),
    ]
    assert all(r["settlement"] == "st_mixed" for r in rows)


@pytest.mark.parametrize("reference", ['=HYPERLINK("http://x")', "+1+2", "-1+2", "@SUM(A1)", "\tx", "\rx"])
def test_a_csv_text_cell_a_spreadsheet_would_run_starts_with_a_quote_and_numbers_stay_numbers(reference):
    """Breaks if a reference from the gateway reached a spreadsheet as a formula, or a negative amount as text."""
    hostile = line("sl_h", reference, -700, currency="-USD")
    found = settlement("st_h", [hostile], currency="-USD")
    out = io.StringIO()
    write_csv(summarise([SettlementImport(found, AT, "sl_h", done=True, unknown=(unknown(hostile),))], []), out)
    settlement_row, mismatch_row = csv.DictReader(io.StringIO(out.getvalue(), newline=""))
    assert (mismatch_row["reference"], mismatch_row["gateway_currency"]) == (f"'{reference}", "'-USD")
    assert (mismatch_row["gateway_amount"], settlement_row["gross"], settlement_row["net"]) == ("-700", "-700", "-700")
    assert (settlement_row["currency"], mismatch_row["currency"]) == ("'-USD", "'-USD")


def test_the_days_run_from_the_start_of_the_first_to_the_end_of_the_last_in_utc():
    start, end = day_range(date(2026, 12, 1), date(2026, 12, 8))
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 12, 1, tzinfo=UTC)
    assert datetime.fromtimestamp(end, UTC) == datetime(2026, 12, 8, 23, 59, 59, tzinfo=UTC)
    assert day_range(date(2026, 12, 8), date(2026, 12, 8)) == (end - 86399, end)


@pytest.mark.parametrize(
    "argv",
    [
        ["--from", "2026-12-08", "--to", "2026-12-01", "--environment", "dev"],  # backwards
        ["--from", "08/12/2026", "--to", "2026-12-08", "--environment", "dev"],  # not YYYY-MM-DD
        ["--from", "2026-12-01", "--to", "2026-12-08"],  # no table
    ],
    ids=["backwards", "date-format", "no-table"],
)
def test_a_range_or_target_it_cannot_read_is_refused(argv, capsys):
    with pytest.raises(SystemExit) as refused:
        _parse(argv)
    assert refused.value.code == 2 and "usage:" in capsys.readouterr().err


# --- read from the stores an import wrote ------------------------------------------------------------------------


def test_the_report_reads_every_merchants_share_and_the_operators_lines_as_the_import_wrote_them():
    """Two merchants' payments settled together, one line adjusted by the gateway, one line nobody knows."""
    gateway = FakeGateway()
    world = fake_world(gateway)
    ours, adjusted = captured(world, 1000), captured(world, 2000)
    theirs = world.other().create_payment(PaymentCommand(3000, "usd", card=card()), "req", "theirs").body["id"]
    (made,) = gateway.settle(adjust={adjusted: 5}, unknown=1)
    merchants = [world.tenancy.dependencies(m) for m in world.tenancy.directory.merchants()]
    imports = FakeSettlementImports(world.db)
    import_settlements(gateway, imports, merchants, world.clock)
    merchant_ids = sorted(m.id for m in world.tenancy.directory.merchants())

    def report(created_from: int, created_to: int):
        kept, shares = read(imports, lambda m: FakeLedgerStore(world.db, m), merchant_ids, created_from, created_to)
        return summarise(kept, shares)

    (summary,) = report(made.created, made.created)
    assert (summary.settlement.id, summary.settlement.lines, summary.done) == (made.id, 4, True)
    assert summary.matched == 2 and summary.unaccounted == 0
    owned = [(o.owner, o.mismatch.reference, o.mismatch.reason) for o in summary.mismatches]
    (nobodys_line,) = [o.mismatch.gateway_line for o in summary.mismatches if o.owner == OPERATOR]
    assert owned == [
        (world.deps.store.merchant, adjusted, MismatchReason.AMOUNT_DIFFERS),
        (OPERATOR, owned[1][1], MismatchReason.UNKNOWN_REFERENCE),
    ]
    assert nobodys_line and owned[1][1] not in (ours, adjusted, theirs)
    assert (summary.mismatches[0].mismatch.ledger_amount, summary.mismatches[0].mismatch.gateway_amount) == (2000, 2005)
    assert report(made.created + 1, made.created + 86400) == [] and report(0, made.created - 1) == []


@pytest.mark.integration
def test_the_command_reads_the_ledger_table_and_writes_the_csv(moto_resources, tmp_path, capsys):
    """What the DynamoDB stores hold, read by `make settlement-report`'s command: one merchant's mismatches and the
    operator's line, in the days asked for."""
    dynamodb, table = boto3.client("dynamodb"), moto_resources["LEDGER_TABLE"]
    store = DynamoLedgerStore(dynamodb, table, metadata_cipher=None, merchant="merchant-a")  # type: ignore[arg-type]
    imports = DynamoSettlementImports(dynamodb, table)
    imports.begin(MIXED, AT)
    store.add_expected([B2_EXPECTED, REFUND_UNSETTLED])
    b2 = ShareLine(ADJUSTED_B2.id, ADJUSTED_B2.reference, ADJUSTED_B2.amount, ADJUSTED_B2.fee, B2_DIFFERS)
    reported = not_settled(REFUND_UNSETTLED)
    for add in (lambda uow: store.add_share_line(uow, MIXED, b2, None, []),
                lambda uow: store.add_not_settled(uow, MIXED, REFUND_UNSETTLED, reported)):  # fmt: skip
        uow = store.unit_of_work()
        add(uow)
        uow.commit()
    imports.add_unknown(MIXED.id, unknown(UNKNOWN))
    imports.finish(MIXED)
    exported = tmp_path / "report.csv"
    main(["--from", "2026-12-08", "--to", "2026-12-08", "--table", table, "--merchants-table",
          moto_resources["MERCHANTS_TABLE"], "--csv", str(exported)])  # fmt: skip
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "Settlements created 2026-12-08 to 2026-12-08 (UTC): 1; amounts in minor units"
    assert [r.split()[1:5] for r in rows if r.startswith("st_mixed") and "_" in r.split()[4]] == [
        ["merchant-a", "pay_b2", "sl_b2", "amount_differs"],
        ["merchant-a", "re_b3", "-", "not_settled"],
        [OPERATOR, "pay_nobody", "sl_x", "unknown_reference"],
    ]
    written = list(csv.DictReader(exported.open()))
    assert [(r["row"], r["owner"], r["reason"]) for r in written] == [
        ("settlement", "", ""), ("mismatch", "merchant-a", "amount_differs"), ("mismatch", "merchant-a", "not_settled"),
        ("mismatch", OPERATOR, "unknown_reference"),
    ]  # fmt: skip
    main(["--from", "2026-12-09", "--to", "2026-12-31", "--table", table, "--merchants-table",
          moto_resources["MERCHANTS_TABLE"]])  # fmt: skip
    assert capsys.readouterr().out.startswith("Settlements created 2026-12-09 to 2026-12-31 (UTC): 0;")


@pytest.mark.integration
def test_no_emulator_to_read_is_named_in_one_line(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    with pytest.raises(SystemExit) as stopped:
        main(["--from", "2026-12-01", "--to", "2026-12-08", "--table", "ledger", "--merchants-table", "merchants",
              "--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1"])  # fmt: skip
    assert str(stopped.value.code).startswith("No answer from http://127.0.0.1:9: is `make local` running")
