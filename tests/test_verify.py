"""`make verify` against the emulator (a moto server over HTTP): an untouched ledger verifies; an edited, deleted or
inserted entry, or a head that disagrees, makes it exit 1 naming the first break. Concurrent writers on one
merchant and one chain leave it gapless (the store places entries again after a head that moved)."""

import base64
import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lambdas.adapters.dynamo import from_item, to_item
from lambdas.adapters.ledger_store import CHECKPOINTS, HEADS, ChainAppend, DynamoLedgerStore
from lambdas.adapters.signer import KmsSigner
from lambdas.domain.chains import Head, chain_of
from lambdas.domain.payments import Direction, Entry
from lambdas.domain.rules import RuleSet
from lambdas.storage_schema import LEDGER, Partition
from lambdas.use_cases import Dependencies
from lambdas.use_cases.checkpoints import write_checkpoint
from tests.conftest import REPO
from tools.emulator import EMULATOR_CREDENTIALS, free_port, moto_server
from tools.function_resources import create_table
from tools.verify import chain_items, verify

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
    """The stored key of the payment's credit entry."""
    return _stored_key(store, _credit(store, payment_id))


def _credit(store, payment_id: str) -> Entry:
    (credit,) = [e for e in store.entries(payment_id) if e.direction is Direction.CREDIT]
    return credit


def _stored_key(store, entry: Entry) -> dict:
    partition = {":pk": {"S": Partition.LEDGER.key(MERCHANT, entry.payment_id)}}
    items = store.client.query(TableName=store.table, KeyConditionExpression="pk = :pk",
                               ExpressionAttributeValues=partition)  # fmt: skip
    (found,) = [i for i in items["Items"] if i["id"]["S"] == entry.id]
    return {"pk": found["pk"], "sk": found["sk"]}


@pytest.fixture(scope="module")
def signing(endpoint) -> KmsSigner:
    """The ledger's signing key, in the emulator's KMS."""
    credentials = {k.lower(): v for k, v in EMULATOR_CREDENTIALS.items()}
    kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1", **credentials)
    return KmsSigner(kms, kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"])


def _checkpoint(store: DynamoLedgerStore, signer: KmsSigner) -> str:
    """The scheduled function's use case, on this store and key."""
    deps = Dependencies(store, None, None, None, None, RuleSet(), signer)  # type: ignore[arg-type]  # what it uses
    return write_checkpoint(deps)


def _checkpoint_key(sequence: int) -> dict:
    return to_item({"pk": Partition.CHECKPOINT.key(MERCHANT, CHECKPOINTS), "sk": f"CHECKPOINT#{sequence:012d}"})


def _verify(client, table, signing):
    return verify(client, table, [MERCHANT], public_keys={signing.key_id: signing.public_key_pem()})


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


def _edit_an_entry(client, table, store, payments) -> str:
    client.update_item(TableName=table, Key=_entry_key(store, payments[1]), UpdateExpression="SET currency = :eur",
                       ExpressionAttributeValues={":eur": {"S": "EUR"}})  # fmt: skip
    return f"chain {chain_of(payments[1])}, sequence {_credit(store, payments[1]).sequence}, entry le_{payments[1]}_c:"


def _delete_an_entry(client, table, store, payments) -> str:
    credit = _credit(store, payments[1])
    client.delete_item(TableName=table, Key=_entry_key(store, payments[1]))
    return f"chain {chain_of(payments[1])}, sequence {credit.sequence}"


def _copy_an_entry(client, table, store, payments) -> str:
    key = _entry_key(store, payments[1])
    item = client.get_item(TableName=table, Key=key)["Item"]
    copy = {name: value for name, value in item.items() if name not in ("chain_pk", "chain_seq")}
    client.put_item(TableName=table, Item=copy | {"sk": {"S": item["sk"]["S"] + "#copy"}})
    return f"entry le_{payments[1]}_c: an entry outside every chain"


def _replace_a_signature(client, table, store, payments) -> str:
    signature = base64.b64encode(b"\x30" + bytes(70)).decode()
    client.update_item(TableName=table, Key=_checkpoint_key(1), UpdateExpression="SET signature = :s",
                       ExpressionAttributeValues={":s": {"S": signature}})  # fmt: skip
    return "checkpoint 1: its signature"


@pytest.mark.parametrize("tamper", [_edit_an_entry, _delete_an_entry, _copy_an_entry, _replace_a_signature])
def test_the_command_names_a_tampering(ledger, endpoint, signing, tamper):
    """Exit 0 while intact; exit 1 naming what was tampered with. (A short name: the table is named after it.)"""
    client, table, store = ledger
    payments = _written(store, 3)
    _checkpoint(store, signing)
    command = [sys.executable, "-m", "tools.verify", "--table", table, "--merchant", MERCHANT,
               "--signing-key", signing.key_id, "--endpoint-url", endpoint, "--region", "us-east-1"]  # fmt: skip
    environment = os.environ | EMULATOR_CREDENTIALS
    intact = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert intact.returncode == 0 and intact.stdout.startswith("intact: 6 entries of 1 merchants"), intact
    assert "entries/s" in intact.stdout
    named = tamper(client, table, store, payments)
    broken = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert broken.returncode == 1
    assert broken.stdout.startswith(f"BROKEN: merchant {MERCHANT}, {named}"), broken.stdout


def _signed_twice(store, signing) -> list[str]:
    """Checkpoints 1 (three payments) and 2 (six)."""
    payments = _written(store, 3)
    assert _checkpoint(store, signing) == "written"
    payments += [f"pay_{i:024d}" for i in range(3, 6)]
    for i, payment in enumerate(payments[3:]):
        _record(store, payment, 200 + i)
    assert _checkpoint(store, signing) == "written"
    return payments


def test_an_untouched_ledger_and_its_checkpoints_verify(ledger, signing):
    client, table, store = ledger
    _signed_twice(store, signing)
    assert _checkpoint(store, signing) == "unchanged"
    assert _verify(client, table, signing).broken is None
    _, broken = verify(client, table, [MERCHANT]).broken  # checkpoints, and no key to check them with
    assert broken.checkpoint == 1 and "not one of the ledger's signing keys" in broken.reason


def test_a_replaced_checkpoint_signature_is_named(ledger, signing):
    client, table, store = ledger
    _signed_twice(store, signing)
    first = client.get_item(TableName=table, Key=_checkpoint_key(1))["Item"]["signature"]
    client.update_item(TableName=table, Key=_checkpoint_key(2), UpdateExpression="SET signature = :s",
                       ExpressionAttributeValues={":s": first})  # fmt: skip
    _, broken = _verify(client, table, signing).broken
    assert broken.checkpoint == 2 and "its signature" in broken.reason
    assert str(broken).startswith("checkpoint 2: ")


def test_a_forged_checkpoint_signed_by_another_key_is_named(ledger, signing, endpoint):
    client, table, store = ledger
    _signed_twice(store, signing)
    made = signing.kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    other = KmsSigner(signing.kms, made["KeyMetadata"]["Arn"])
    assert _checkpoint(_store_after(store, 7), other) == "written"  # checkpoint 3, by a key that is not the ledger's
    _, broken = _verify(client, table, signing).broken
    assert broken.checkpoint == 3 and "not one of the ledger's signing keys" in broken.reason
    forged = client.get_item(TableName=table, Key=_checkpoint_key(3))["Item"]
    forged["document"]["S"] = forged["document"]["S"].replace(other.key_id, signing.key_id)  # naming the ledger's key
    client.put_item(TableName=table, Item=forged)
    _, broken = _verify(client, table, signing).broken
    assert broken.checkpoint == 3 and "its signature" in broken.reason


def test_checkpoints_signed_before_and_after_the_signing_key_was_replaced_verify_with_both_keys(ledger, signing):
    client, table, store = ledger
    _signed_twice(store, signing)
    made = signing.kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    replacing = KmsSigner(signing.kms, made["KeyMetadata"]["Arn"])
    assert _checkpoint(store, replacing) == "written"  # the newest re-signed under the key the API now serves
    keys = {signer.key_id: signer.public_key_pem() for signer in (signing, replacing)}
    assert verify(client, table, [MERCHANT], public_keys=keys).broken is None
    _, broken = verify(client, table, [MERCHANT], public_keys={replacing.key_id: keys[replacing.key_id]}).broken
    assert broken.checkpoint == 1 and signing.key_id in broken.reason


def _store_after(store, n: int) -> DynamoLedgerStore:
    """The store, after the n-th payment: a ledger that moved since its last checkpoint."""
    _record(store, f"pay_{n:024d}", 300)
    return store


def test_a_checkpoint_is_stored_as_the_very_text_its_signature_covers(ledger, signing):
    """What is kept is what was signed: the stored document checks with the public key as it is, no rebuilding."""
    client, table, store = ledger
    _written(store, 2)
    assert _checkpoint(store, signing) == "written"
    stored = from_item(client.get_item(TableName=table, Key=_checkpoint_key(1), ConsistentRead=True)["Item"])
    public_key = serialization.load_pem_public_key(signing.public_key_pem().encode())
    public_key.verify(base64.b64decode(stored["signature"]), stored["document"].encode(), ec.ECDSA(hashes.SHA256()))
    assert json.loads(stored["document"]) | {"signature": stored["signature"]} == store.latest_checkpoint().body


def test_a_deleted_checkpoint_is_named_by_the_gap(ledger, signing):
    client, table, store = ledger
    _signed_twice(store, signing)
    client.delete_item(TableName=table, Key=_checkpoint_key(1))
    _, broken = _verify(client, table, signing).broken
    assert broken.checkpoint == 2 and broken.reason == "checkpoint 1 is missing before it"


def test_a_chain_rewritten_whole_checks_by_itself_but_not_against_its_checkpoint(ledger, signing):
    """An entry's amount edited, and every hash after it and the head recomputed to match (what someone with table
    access could do): the chains check, the checkpoint signed before does not."""
    client, table, store = ledger
    payments = _signed_twice(store, signing)
    chain = chain_of(payments[0])
    entries = sorted((e for _, e in chain_items(client, table, MERCHANT, chain)), key=lambda e: e.sequence)
    rewritten, head = Head(chain).extend(MERCHANT, [replace(e, amount=1) if e.sequence == 1 else e for e in entries])
    for entry in rewritten:  # the same items, under the same keys, with the new amount and hashes
        item = to_item(store._entry_item(0, entry)) | _stored_key(store, entry)
        client.put_item(TableName=table, Item=item)
    uow = store.unit_of_work()
    uow.add(*store.head_part(store.head(chain), head))
    uow.commit()
    assert "not one of the ledger's" in verify(client, table, [MERCHANT]).broken[1].reason  # the chains check alone
    _, broken = _verify(client, table, signing).broken
    assert (broken.checkpoint, broken.chain) == (1, chain)
    assert "not the one it signed" in broken.reason
