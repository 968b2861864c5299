"""`make settlement-report FROM=YYYY-MM-DD TO=YYYY-MM-DD [CSV=path]` (python -m tools.settlement_report): the
operator's report of the gateway settlements created in those days (UTC, both included).

Each settlement: its currency, the gateway's gross, fees and net, its lines, how many of them matched a merchant's
ledger, how many mismatches it brought, and whether its import is done. Then every mismatch with what each side
says: the merchants' (from each merchant's share of the settlement: a line whose amount or currency differs from
the ledger's, a payment or refund reported ``not_settled`` in it) and the operator's (``unknown_reference``: a line
no merchant's ledger knows). Then the totals per currency. Amounts are in minor units, as the API gives them.
``--csv`` also writes one row per settlement and one per mismatch (the ``row`` column says which); a text cell a
spreadsheet would read as a formula (the gateway's references and ids are anyone's text) starts with ``'``.

Read-only, from the ledger table: ``--environment``'s (AWS credentials), or ``--endpoint-url`` for `make local`'s
emulator, as `make verify` does. Every merchant in the merchants table is read; a settlement whose lines do not all
belong to one of them, or to the operator, is flagged."""

import argparse
import csv
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import EndpointConnectionError

from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.adapters.merchants import DynamoMerchantDirectory
from lambdas.adapters.settlement_imports import DynamoSettlementImports
from lambdas.domain.settlements import Mismatch, Settlement, Share
from lambdas.ports import SettlementImport, SettlementImports, SettlementRecords

OPERATOR = "operator"  # the owner of a mismatch no merchant owns (unknown_reference)
CSV_COLUMNS = ("row", "settlement", "created_at", "currency", "gross", "fees", "net", "lines", "matched",
               "mismatches", "import", "owner", "reference", "gateway_line", "reason", "ledger_amount",
               "ledger_currency", "gateway_amount", "gateway_currency")  # fmt: skip
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting so as a formula


@dataclass(frozen=True)
class Owned:
    """A mismatch and whose it is: a merchant's id, or ``OPERATOR``."""

    owner: str
    mismatch: Mismatch


@dataclass(frozen=True)
class SettlementSummary:
    """One settlement as the gateway sums it, and how its lines and the ledgers agree."""

    settlement: Settlement
    done: bool  # every line imported and every merchant's share completed
    matched: int  # lines that matched a merchant's ledger and were booked
    mismatches: tuple[Owned, ...]  # the merchants' (by merchant id), then the operator's
    # lines neither in a merchant's share nor the operator's: 0 once done, unless a merchant was not read
    unaccounted: int


def summarise(imports: Sequence[SettlementImport], shares: Iterable[tuple[str, Share]]) -> list[SettlementSummary]:
    """The report's settlements, in the order of ``imports`` (oldest first), from the merchants' shares of them
    (``(merchant, share)``, mismatches attached); shares of other settlements are left out."""
    by_settlement: dict[str, list[tuple[str, Share]]] = {}
    for merchant, share in shares:
        by_settlement.setdefault(share.settlement_id, []).append((merchant, share))
    summaries = []
    for kept in imports:
        owned = sorted(by_settlement.get(kept.settlement.id, []), key=lambda pair: pair[0])
        line_mismatches = sum(m.gateway_line is not None for _, share in owned for m in share.mismatches)
        merchants_lines = sum(share.lines for _, share in owned)
        mismatches = [Owned(merchant, m) for merchant, share in owned for m in share.mismatches]
        mismatches += [Owned(OPERATOR, m) for m in kept.unknown]
        summaries.append(
            SettlementSummary(
                kept.settlement,
                kept.done,
                merchants_lines - line_mismatches,
                tuple(mismatches),
                kept.settlement.lines - merchants_lines - len(kept.unknown),
            )
        )
    return summaries


@dataclass(frozen=True)
class Totals:
    currency: str
    settlements: int = 0
    gross: int = 0
    fees: int = 0
    net: int = 0
    matched: int = 0
    mismatches: int = 0


def totals(summaries: Sequence[SettlementSummary]) -> list[Totals]:
    """Per currency (alphabetical): the gateway's sums over the settlements, the matched lines and the mismatches."""
    sums: dict[str, Totals] = {}
    for summary in summaries:
        s = summary.settlement
        t = sums.get(s.currency, Totals(s.currency))
        sums[s.currency] = Totals(s.currency, t.settlements + 1, t.gross + s.gross, t.fees + s.fees, t.net + s.net,
                                  t.matched + summary.matched, t.mismatches + len(summary.mismatches))  # fmt: skip
    return [sums[currency] for currency in sorted(sums)]


def read(
    imports: SettlementImports,
    shares_of: Callable[[str], SettlementRecords[Any]],
    merchants: Sequence[str],
    created_from: int,
    created_to: int,
) -> tuple[list[SettlementImport], list[tuple[str, Share]]]:
    """The settlements created in ``[created_from, created_to]`` and each merchant's share of each (``shares_of``:
    the merchant's ``SettlementRecords``), as ``summarise`` takes them."""
    kept = imports.imports(created_from, created_to)
    shares = []
    for merchant in merchants:
        records = shares_of(merchant)
        for settlement_import in kept:
            share = records.get_share(settlement_import.settlement.id)
            if share is not None:
                shares.append((merchant, share))
    return kept, shares


# -- what a person reads ----------------------------------------------------------------------------------------


def _when(created: int) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M")


def _import_state(summary: SettlementSummary) -> str:
    if not summary.done:
        return "importing"
    return f"done, {summary.unaccounted} lines of no known merchant" if summary.unaccounted else "done"


def _side(amount: int | None, currency: str | None) -> str:
    return "-" if amount is None else f"{amount} {currency or ''}".rstrip()


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: frozenset[int]) -> list[str]:
    """Aligned columns (two spaces apart): ``numeric`` columns right-aligned, the others left."""
    cells = [[str(cell) for cell in row] for row in (headers, *rows)]
    widths = [max(len(row[n]) for row in cells) for n in range(len(headers))]
    return [
        "  ".join(
            cell.rjust(widths[n]) if n in numeric else cell.ljust(widths[n]) for n, cell in enumerate(row)
        ).rstrip()
        for row in cells
    ]


SETTLEMENT_COLUMNS = ("settlement", "created", "currency", "gross", "fees", "net", "lines", "matched", "mismatches",
                      "import")  # fmt: skip
MISMATCH_COLUMNS = ("settlement", "owner", "reference", "line", "reason", "ledger says", "gateway says")
TOTAL_COLUMNS = ("currency", "settlements", "gross", "fees", "net", "matched", "mismatches")


def render(summaries: Sequence[SettlementSummary], first: date, last: date) -> str:
    """The report as a person reads it: the settlements, every mismatch, the totals per currency."""
    lines = [f"Settlements created {first} to {last} (UTC): {len(summaries)}; amounts in minor units"]
    if not summaries:
        return lines[0] + "\n"
    settlements = [(s.settlement.id, _when(s.settlement.created), s.settlement.currency, s.settlement.gross,
                    s.settlement.fees, s.settlement.net, s.settlement.lines, s.matched, len(s.mismatches),
                    _import_state(s)) for s in summaries]  # fmt: skip
    lines += ["", *_table(SETTLEMENT_COLUMNS, settlements, frozenset(range(3, 9)))]
    owned = [(s.settlement.id, o.owner, o.mismatch) for s in summaries for o in s.mismatches]
    lines += ["", f"Mismatches: {len(owned) or 'none'}"]
    if owned:
        mismatches = [(settlement, owner, m.reference or "-", m.gateway_line or "-", m.reason.value,
                       _side(m.ledger_amount, m.ledger_currency), _side(m.gateway_amount, m.gateway_currency))
                      for settlement, owner, m in owned]  # fmt: skip
        lines += _table(MISMATCH_COLUMNS, mismatches, frozenset())
    sums = [(t.currency, t.settlements, t.gross, t.fees, t.net, t.matched, t.mismatches) for t in totals(summaries)]
    lines += ["", "Totals", *_table(TOTAL_COLUMNS, sums, frozenset(range(1, 7)))]
    return "\n".join(lines) + "\n"


def inert(value: object) -> object:
    """A CSV cell no spreadsheet runs: text starting like a formula gets a leading ``'``; numbers stay numbers."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


class _InertWriter(csv.DictWriter):  # type: ignore[type-arg]
    """Writes every row's cells ``inert``."""

    def writerow(self, rowdict: Any) -> Any:
        return super().writerow({column: inert(value) for column, value in rowdict.items()})


def write_csv(summaries: Sequence[SettlementSummary], out: TextIO) -> None:
    """One ``settlement`` row per settlement (its sums), each followed by one ``mismatch`` row per mismatch (what
    each side says), under one header of ``CSV_COLUMNS``; every cell ``inert``."""
    writer = _InertWriter(out, CSV_COLUMNS)  # its rows end in \r\n: a cell holding \r or \n is quoted
    writer.writeheader()
    for s in summaries:
        settlement = s.settlement
        created = datetime.fromtimestamp(settlement.created, UTC).isoformat()
        common = {"settlement": settlement.id, "created_at": created, "currency": settlement.currency}
        writer.writerow({"row": "settlement", **common, "gross": settlement.gross, "fees": settlement.fees,
                         "net": settlement.net, "lines": settlement.lines, "matched": s.matched,
                         "mismatches": len(s.mismatches), "import": _import_state(s)})  # fmt: skip
        for owned in s.mismatches:
            m = owned.mismatch
            writer.writerow({"row": "mismatch", **common, "owner": owned.owner, "reference": m.reference,
                             "gateway_line": m.gateway_line, "reason": m.reason.value,
                             "ledger_amount": m.ledger_amount, "ledger_currency": m.ledger_currency,
                             "gateway_amount": m.gateway_amount, "gateway_currency": m.gateway_currency})  # fmt: skip


def day_range(first: date, last: date) -> tuple[int, int]:
    """The unix seconds from the start of ``first`` to the end of ``last`` (UTC), both included."""
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    return int(start.timestamp()), int(end.timestamp()) - 1


# -- the command ---------------------------------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.settlement_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="first", type=date.fromisoformat, required=True, help="YYYY-MM-DD (UTC)")
    parser.add_argument("--to", dest="last", type=date.fromisoformat, required=True, help="YYYY-MM-DD, included")
    parser.add_argument("--csv", type=Path, help="also write the settlements and mismatches to this CSV file")
    parser.add_argument("--environment", help="its ledger and merchants tables")
    parser.add_argument("--table", help="the ledger table (instead of --environment's)")
    parser.add_argument("--merchants-table", help="where the merchants are listed (instead of --environment's)")
    parser.add_argument("--endpoint-url", help="an AWS-compatible endpoint (`make local`'s emulator)")
    parser.add_argument("--region")
    args = parser.parse_args(argv)
    if args.first > args.last:
        parser.error("--from is after --to")
    if not args.environment and not (args.table and args.merchants_table):
        parser.error("name --environment, or --table and --merchants-table")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    table, merchants_table, region = args.table, args.merchants_table, args.region
    if args.environment:
        from stacks.config import configured_environment  # loads jsii: only when an environment is named

        config = configured_environment(args.environment)
        table = table or f"{config.prefix}-ledger"
        merchants_table = merchants_table or f"{config.prefix}-merchants"
        region = region or config.region
    client = boto3.client("dynamodb", endpoint_url=args.endpoint_url, region_name=region)
    try:
        merchants = [m.id for m in DynamoMerchantDirectory(client, merchants_table).merchants()]
    except EndpointConnectionError:
        sys.exit(f"No answer from {args.endpoint_url or 'DynamoDB'}: is `make local` running (or name ENV=...)?")

    def shares_of(merchant: str) -> DynamoLedgerStore:
        return DynamoLedgerStore(client, table, metadata_cipher=None, merchant=merchant)  # type: ignore[arg-type]

    kept, shares = read(DynamoSettlementImports(client, table), shares_of, merchants, *day_range(args.first, args.last))
    summaries = summarise(kept, shares)
    sys.stdout.write(render(summaries, args.first, args.last))
    if args.csv:
        with args.csv.open("w", newline="", encoding="utf-8") as out:
            write_csv(summaries, out)
        print(f"CSV: {args.csv}")


if __name__ == "__main__":
    main()
