"""`make verify` against the emulator (a moto server over HTTP): an untouched ledger verifies; an edited, deleted or
inserted entry, or a head that disagrees, makes it exit 1 naming the first break. Concurrent writers on one
merchant and one chain leave it gapless (the store places entries again after a head that moved)."""

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime

import boto3
import pytest

from lambdas.adapters.dynamo import to_item
from lambdas.adapters.ledger_store import HEADS, ChainAppend, DynamoLedgerStore
from lambdas.domain.chains import Head, chain_of
from lambdas.domain.payments import Direction, Entry
from lambdas.storage_schema import LEDGER, Partition
from tests.conftest import REPO
from tools.emulator import EMULATOR_CREDENTIALS, free_port, moto_server
from tools.function_resources import create_table
from tools.verify import verify

MERCHANT = "acme"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def endpoint():
    with moto_server(free_port()) as url:
        yield url


@pytest.fixture
def ledger(endpoint, request):
    """A fresh ledger table on the emulator, and a store of MERCHANT's records in it."""
    credentials = {k.lower(): v for k, v in EMULATOR_CREDENTIALS.items()}
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", **credentials)
    table = f"ledger-{request.node.name[:40].replace('[', '-').replace(']', '')}"
    create_table(client, table, LEDGER)
    return client, table, DynamoLedgerStore(client, table, metadata_cipher=None, merchant=MERCHANT)  # type: ignore[arg-type]


def _record(store: DynamoLedgerStore, payment_id: str, amount: int) -> int:
    """A captured payment's two entries, written as the service writes them; the head moves it met."""
    entries = [
        Entry(f"le_{payment_id}_d", payment_id, "gateway_receivable:sparkle", Direction.DEBIT, amount, "USD", NOW),
        Entry(f"le_{payment_id}_c", payment_id, "merchant_balance", Direction.CREDIT, amount, "USD", NOW),
    ]
    uow = store.unit_of_work()
    uow.append(ChainAppend(store, entries))
    uow.commit()
    return uow.moved_heads


def _written(store, n: int = 6) -> list[str]:
    payments = [f"pay_{i:024d}" for i in range(n)]
    for i, payment in enumerate(payments):
        _record(store, payment, 100 + i)
    return payments


def _entry_key(store, payment_id: str) -> dict:
    (item,) = [e for e in store.entries(payment_id) if e.direction is Direction.CREDIT]
    partition = {":pk": {"S": Partition.LEDGER.key(MERCHANT, payment_id)}}
    items = store.client.query(TableName=store.table, KeyConditionExpression="pk = :pk",
                               ExpressionAttributeValues=partition)  # fmt: skip
    (found,) = [i for i in items["Items"] if i["id"]["S"] == item.id]
    return {"pk": found["pk"], "sk": found["sk"]}


def test_an_untouched_ledger_verifies(ledger):
    client, table, store = ledger
    _written(store)
    report = verify(client, table, [MERCHANT])
    assert report.broken is None and report.entries == 12


def test_an_edited_amount_is_named(ledger):
    client, table, store = ledger
    payments = _written(store)
    key = _entry_key(store, payments[2])
    client.update_item(TableName=table, Key=key, UpdateExpression="SET amount = :one",
                       ExpressionAttributeValues={":one": {"N": "1"}})  # fmt: skip
    merchant, broken = verify(client, table, [MERCHANT]).broken
    assert (merchant, broken.entry_id) == (MERCHANT, f"le_{payments[2]}_c") and "an edited entry" in broken.reason
    assert broken.chain == chain_of(payments[2])


def test_a_deleted_entry_is_named_by_the_gap(ledger):
    client, table, store = ledger
    payments = _written(store)
    victim = payments[3]
    client.delete_item(TableName=table, Key=_entry_key(store, victim))
    _, broken = verify(client, table, [MERCHANT]).broken
    (debit,) = [e for e in store.entries(victim)]
    assert broken.chain == chain_of(victim) and broken.sequence == debit.sequence + 1
    assert "a deleted entry" in broken.reason or "entries missing at the end" in broken.reason


def test_an_inserted_entry_with_a_valid_hash_is_found_past_the_head(ledger):
    client, table, store = ledger
    _written(store)
    chain = chain_of("pay_forged")
    head = store.head(chain)
    (forged,), _ = Head(chain, head.sequence, head.hash, head.balances).extend(MERCHANT, [
        Entry("le_forged", "pay_forged", "merchant_balance", Direction.CREDIT, 10_000, "USD", NOW)])  # fmt: skip
    item = store._entry_item(0, forged)  # the item exactly as the store would write it
    client.put_item(TableName=table, Item=to_item(item))
    _, broken = verify(client, table, [MERCHANT]).broken
    assert broken.chain == chain and "an inserted entry past the head" in broken.reason


def test_a_head_whose_balances_were_changed_is_named(ledger):
    client, table, store = ledger
    payments = _written(store)
    chain = chain_of(payments[0])
    head_key = to_item({"pk": Partition.CHAIN.key(MERCHANT, HEADS), "sk": f"HEAD#{chain:02d}"})
    client.update_item(TableName=table, Key=head_key, UpdateExpression="SET balances.#k = :zero",
                       ExpressionAttributeNames={"#k": "USD:merchant_balance"},
                       ExpressionAttributeValues={":zero": {"N": "0"}})  # fmt: skip
    _, broken = verify(client, table, [MERCHANT]).broken
    assert broken.chain == chain and "balances are not the sum" in broken.reason


def test_eight_writers_on_one_chain_leave_it_gapless_by_placing_entries_again_after_a_moved_head(ledger):
    client, table, store = ledger
    same_chain = [p for p in (f"pay_{i:024d}" for i in range(20_000)) if chain_of(p) == 0][:80]
    moved: list[int] = []
    errors: list[Exception] = []

    def writer(payments: list[str]) -> None:
        try:
            moved.extend(_record(store, payment, 100) for payment in payments)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(same_chain[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    report = verify(client, table, [MERCHANT])
    assert report.broken is None and report.entries == 160
    assert store.head(0).sequence == 160 and sum(moved) > 0  # writers met on the head, and nothing was lost
    assert store.head(0).balances == {("gateway_receivable:sparkle", "USD"): 8000, ("merchant_balance", "USD"): -8000}


def test_the_command_exits_1_naming_the_break_and_0_when_intact(ledger, endpoint):
    client, table, store = ledger
    payments = _written(store, 3)
    command = [sys.executable, "-m", "tools.verify", "--table", table, "--merchant", MERCHANT,
               "--endpoint-url", endpoint, "--region", "us-east-1"]  # fmt: skip
    environment = os.environ | EMULATOR_CREDENTIALS
    intact = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert intact.returncode == 0 and intact.stdout.startswith("intact: 6 entries of 1 merchants"), intact
    assert "entries/s" in intact.stdout
    key = _entry_key(store, payments[1])
    client.update_item(TableName=table, Key=key, UpdateExpression="SET currency = :eur",
                       ExpressionAttributeValues={":eur": {"S": "EUR"}})  # fmt: skip
    broken = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert broken.returncode == 1
    assert broken.stdout.startswith(f"BROKEN: merchant acme, chain {chain_of(payments[1])}, sequence ")
    assert f"entry le_{payments[1]}_c: an edited entry" in broken.stdout
