"""`make bench-ledger`: the ledger's write path with hash chains, on the emulator (a moto server over HTTP, one
request at a time, as tools/emulator.py runs it).

- payments per second for 1 and 8 writers on one merchant: each payment's two entries placed at the end of its
  chain, with the head's update, in one transaction (lambdas.adapters.ledger.chains.ChainAppend);
- head retries per payment (a writer that found the head moved places its entries again; goal <= 0.1 at 8);
- against a baseline measured in the same run: the same entries put without a chain;
- `make verify`'s throughput in entries per second over what was written.

The emulator serializes requests, so the figures compare write paths on this machine; AWS's ceiling is on paper
in docs/benchmarks.md (64 heads per merchant, ~500 transactional writes/s each)."""

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import boto3

from lambdas.adapters.dynamo import put_new
from lambdas.adapters.ledger.chains import ChainAppend
from lambdas.adapters.ledger.table import PK
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.domain.payments import Direction, Entry
from lambdas.storage_schema import LEDGER, Partition
from tools.emulator import EMULATOR_CREDENTIALS, free_port, moto_server
from tools.function_resources import create_table
from tools.verify import verify

PAYMENTS = int(os.environ.get("BENCH_LEDGER_PAYMENTS", "400"))
MERCHANT = "acme"
NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _entries(payment_id: str) -> list[Entry]:
    return [
        Entry(f"le_{payment_id}_d", payment_id, "gateway_receivable:sparkle", Direction.DEBIT, 1000, "USD", NOW),
        Entry(f"le_{payment_id}_c", payment_id, "merchant_balance", Direction.CREDIT, 1000, "USD", NOW),
    ]


def chained(store: DynamoLedgerStore, payment_id: str) -> int:
    uow = store.unit_of_work()
    uow.append(ChainAppend(store.chains, _entries(payment_id)))
    uow.commit()
    return uow.moved_heads


def unchained(store: DynamoLedgerStore, payment_id: str) -> int:
    """The baseline: the same two entries, put in one transaction with no chain and no head."""
    uow = store.unit_of_work()
    for n, entry in enumerate(_entries(payment_id)):
        item = {PK: Partition.LEDGER.key(MERCHANT, payment_id), "sk": f"ENTRY#{n}", "id": entry.id}
        uow.add("entry", put_new(store.table, item, PK))
    uow.commit()
    return 0


def run(store: DynamoLedgerStore, write: Callable[[DynamoLedgerStore, str], int], writers: int, tag: str):
    payments = [f"pay_{tag}_{n:020d}" for n in range(PAYMENTS)]
    retries: list[int] = []

    def writer(mine: list[str]) -> None:
        retries.extend(write(store, payment) for payment in mine)

    threads = [threading.Thread(target=writer, args=(payments[w::writers],)) for w in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return len(retries) / seconds, sum(retries) / len(retries)


def main() -> None:
    with moto_server(free_port()) as endpoint:
        credentials = {k.lower(): v for k, v in EMULATOR_CREDENTIALS.items()}
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", **credentials)
        results = {}
        for name, write in (("without chains (baseline)", unchained), ("hash chains", chained)):
            for writers in (1, 8):
                table = f"ledger-{write.__name__}-{writers}"
                create_table(client, table, LEDGER)
                store = DynamoLedgerStore(client, table, metadata_cipher=None, merchant=MERCHANT)  # type: ignore[arg-type]
                results[(name, writers)] = run(store, write, writers, f"{writers}")
        print(f"{PAYMENTS} payments of one merchant, emulator at {endpoint}")
        print(f"{'':28} {'writers':>7} {'payments/s':>11} {'head retries/payment':>21} {'vs baseline':>12}")
        for (name, writers), (rate, retries) in results.items():
            base = results[("without chains (baseline)", writers)][0]
            print(f"{name:28} {writers:7} {rate:11.1f} {retries:21.3f} {rate / base:11.2f}x")
        report = verify(client, "ledger-chained-8", [MERCHANT])
        assert report.broken is None, report.broken
        print(f"verify: {report.entries} entries in {report.seconds:.2f} s, {report.entries_per_second:,.0f} entries/s")


if __name__ == "__main__":
    main()
