"""`make verify` against the emulator (a moto server over HTTP): an untouched ledger verifies; an edited, deleted or
inserted entry, or a head that disagrees, makes it exit 1 naming the first break. Concurrent writers on one
merchant and one chain leave it gapless (the store places entries again after a head that moved)."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lambdas.adapters.checkpoint_archive import DirectoryCheckpointArchive, object_key
from lambdas.adapters.dynamo import from_item, to_item
from lambdas.adapters.ledger.chains import HEADS, ChainAppend, DynamoChainRecords
from lambdas.adapters.ledger.checkpoints import CHECKPOINTS
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.adapters.signer import KmsSigner
from lambdas.domain.cards import MaskedCard
from lambdas.domain.chains import Break, Head, canonical, chain_of, positions
from lambdas.domain.checkpoints import Checkpoint, signed_bytes, unsigned_checkpoint
from lambdas.domain.payments import (
    HOLD,
    HOLD_OFFSET,
    RECEIVABLE,
    Action,
    ActionKind,
    CancellationReason,
    Direction,
    Entry,
    Payment,
)
from lambdas.domain.payments import MERCHANT as MERCHANT_BALANCE
from lambdas.domain.rules import RuleSet
from lambdas.storage_schema import LEDGER, MERCHANTS, Partition, merchant_items
from lambdas.use_cases import Dependencies
from lambdas.use_cases.checkpoints import write_checkpoint
from tests.conftest import REPO
from tests.support.fakes import MERCHANT as FAKE_MERCHANT
from tests.support.fakes import fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.ledger_table import NOW, record
from tools.emulator import EMULATOR_CREDENTIALS, free_port, moto_server
from tools.function_resources import create_table
from tools.verify import chain_items, checkpoints_break, read_directory, verify

MERCHANT = "acme"
COPIES = Path(tempfile.mkdtemp(prefix="verify-copies-"))  # the checkpoints' write-once copies, one per table


@pytest.fixture(scope="module")
def endpoint():
    with moto_server(free_port()) as url:
        yield url


@pytest.fixture
def ledger(endpoint, request):
    """A fresh ledger table on the emulator, and a store of MERCHANT's records in it."""
    credentials = {k.lower(): v for k, v in EMULATOR_CREDENTIALS.items()}
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", **credentials)
    unique = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]  # parameters may share the cut name
    table = f"ledger-{request.node.name[:40].replace('[', '-').replace(']', '')}-{unique}"
    create_table(client, table, LEDGER)
    return client, table, DynamoLedgerStore(client, table, metadata_cipher=None, merchant=MERCHANT)  # type: ignore[arg-type]


def _written(store, n: int = 6) -> list[str]:
    payments = [f"pay_{i:024d}" for i in range(n)]
    for i, payment in enumerate(payments):
        record(store, payment, 100 + i)
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


def _copy_root(table: str) -> Path:
    """Where the checkpoints of ``table``'s ledger are kept write-once (a directory, as `make local` keeps them)."""
    return COPIES / table


def _checkpoint(store: DynamoLedgerStore, signer: KmsSigner) -> str:
    """The scheduled function's use case, on this store and key, keeping its copy in the table's directory."""
    archive = DirectoryCheckpointArchive(_copy_root(store.table), store.merchant)
    deps = Dependencies(store, None, None, None, None, RuleSet(), signer, archive)  # type: ignore[arg-type]
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
    head = store.chains.head(chain)
    (forged,), _ = Head(chain, head.sequence, head.hash, head.balances).extend(MERCHANT, [
        Entry("le_forged", "pay_forged", "merchant_balance", Direction.CREDIT, 10_000, "USD", NOW)])  # fmt: skip
    item = store.chains.entry_item(0, forged)  # the item exactly as the store would write it
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
            moved.extend(record(store, payment, 100) for payment in payments)
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
    head = store.chains.head(0)
    assert head.sequence == 160 and sum(moved) > 0  # writers met on the head, and nothing was lost
    assert head.balances == {("gateway_receivable:sparkle", "USD"): 8000, ("merchant_balance", "USD"): -8000}


def _edit_an_entry(client, table, store, payments) -> str:
    client.update_item(TableName=table, Key=_entry_key(store, payments[1]), UpdateExpression="SET currency = :eur",
                       ExpressionAttributeValues={":eur": {"S": "EUR"}})  # fmt: skip
    return f"chain {chain_of(payments[1])}, sequence {_credit(store, payments[1]).sequence}, entry le_{payments[1]}_c:"


def _delete_an_entry(client, table, store, payments) -> str:
    credit = _credit(store, payments[1])
    client.delete_item(TableName=table, Key=_entry_key(store, payments[1]))
    return f"chain {chain_of(payments[1])}, sequence {credit.sequence}"


def _put_a_bare_item_in_a_ledger(client, table, store, payments) -> str:
    """An item under a payment's ledger with nothing but its key: no id, no amount, on no chain."""
    key = _entry_key(store, payments[1])
    client.put_item(TableName=table, Item={"pk": key["pk"], "sk": {"S": key["sk"]["S"] + "#bare"}})
    return f"entry {key['sk']['S']}#bare: an entry outside every chain"


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
    return "checkpoint 1: replaced in the table: it is not the one the write-once copy holds"


def _appended(store, entries: list[Entry]) -> Entry:
    """``entries`` written the way the service's own appender writes them (hashes and head consistent); the first,
    as placed."""
    uow = store.unit_of_work()
    uow.append(ChainAppend(store.chains, entries))
    uow.commit()
    chain = chain_of(entries[0].payment_id)
    return next(entry for _, entry in chain_items(store.client, store.table, store.merchant, chain)
                if entry.id == entries[0].id)  # fmt: skip


def _movement(payment_id: str, debit: int, credit: int) -> list[Entry]:
    return [
        Entry(f"le_{payment_id}_d", payment_id, "gateway_receivable:sparkle", Direction.DEBIT, debit, "USD", NOW),
        Entry(f"le_{payment_id}_c", payment_id, "merchant_balance", Direction.CREDIT, credit, "USD", NOW),
    ]


def _book_a_lone_credit(client, table, store, payments) -> str:
    lone = _appended(store, _movement("pay_lone", 500, 500)[1:])
    return f"chain {lone.chain}, sequence {lone.sequence}, entry le_pay_lone_c: payment pay_lone does not balance"


def _book_an_uneven_pair(client, table, store, payments) -> str:
    debit = _appended(store, _movement("pay_uneven", 500, 400))
    return f"chain {debit.chain}, sequence {debit.sequence}, entry le_pay_uneven_d: payment pay_uneven does not " \
           "balance: debits 500, credits 400"  # fmt: skip


def _book_negative_amounts(client, table, store, payments) -> str:
    debit = _appended(store, _movement("pay_negative", -500, -500))
    return f"chain {debit.chain}, sequence {debit.sequence}, entry le_pay_negative_d: an amount of -500"


def _book_zero_amounts(client, table, store, payments) -> str:
    debit = _appended(store, _movement("pay_zero", 0, 0))
    return f"chain {debit.chain}, sequence {debit.sequence}, entry le_pay_zero_d: an amount of 0"


def _book_a_refund_in_two_currencies(client, table, store, payments) -> str:
    refund = [replace(entry, id=f"{entry.id}_re_1", refund_id="re_1") for entry in _movement(payments[0], 100, 100)]
    debit = _appended(store, [refund[0], replace(refund[1], currency="EUR")])
    return f"chain {debit.chain}, sequence {debit.sequence}, entry {debit.id}: refund re_1 of payment {payments[0]} " \
           "is booked in EUR and USD"  # fmt: skip


def _swap_two_chains(client, table, store, payments) -> str:
    """Every entry of one chain moved to another's, and back, heads too: each chain checks by itself."""
    first, second = sorted({chain_of(payment) for payment in payments})[:2]
    items = {chain: [i for i in client.scan(TableName=table)["Items"] if i.get("chain_pk", {}).get("S") ==
                     Partition.CHAIN.key(MERCHANT, str(chain))] for chain in (first, second)}  # fmt: skip
    heads = {chain: client.get_item(TableName=table, Key=_head_key(chain))["Item"] for chain in (first, second)}
    for chain, other in ((first, second), (second, first)):
        for item in items[chain]:
            client.put_item(TableName=table, Item=item | {"chain_pk": {"S": Partition.CHAIN.key(MERCHANT, str(other))}})
        client.put_item(TableName=table, Item=heads[chain] | _head_key(other))
    (moved, *_) = sorted(items[second], key=lambda item: item["chain_seq"]["S"])
    return f"chain {first}, sequence 1, entry {moved['id']['S']}: an entry of chain {second}, read from chain {first}"


def _head_key(chain: int) -> dict:
    return to_item({"pk": Partition.CHAIN.key(MERCHANT, HEADS), "sk": f"HEAD#{chain:02d}"})


BOOKS_AND_CHAINS = [_book_a_lone_credit, _book_an_uneven_pair, _book_negative_amounts, _book_zero_amounts,
                    _book_a_refund_in_two_currencies, _swap_two_chains]  # fmt: skip


@pytest.mark.parametrize(
    "tamper",
    [
        _edit_an_entry,
        _delete_an_entry,
        _copy_an_entry,
        _put_a_bare_item_in_a_ledger,
        _replace_a_signature,
        *BOOKS_AND_CHAINS,
    ],
)
def test_the_command_names_a_tampering(ledger, endpoint, signing, tamper):
    """Exit 0 while intact; exit 1 naming what was tampered with. (A short name: the table is named after it.)"""
    client, table, store = ledger
    payments = _written(store, 3)
    _checkpoint(store, signing)
    command = [sys.executable, "-m", "tools.verify", "--table", table, "--merchant", MERCHANT,
               "--signing-key", signing.key_id, "--endpoint-url", endpoint, "--region", "us-east-1",
               "--archive-dir", str(_copy_root(table))]  # fmt: skip
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
        record(store, payment, 200 + i)
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
    record(store, f"pay_{n:024d}", 300)
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
    _rewrite(store, chain, at=1)
    assert "not one of the ledger's" in verify(client, table, [MERCHANT]).broken[1].reason  # the chains check alone
    _, broken = _verify(client, table, signing).broken
    assert (broken.checkpoint, broken.chain) == (1, chain)
    assert "not the one it signed" in broken.reason


def _rewrite(store: DynamoLedgerStore, chain: int, at: int) -> None:
    """The chain rewritten whole, as someone with table access could: the amounts of the payment whose entry is at
    ``at`` edited (its books still balance), and every hash from there on and the head recomputed to match."""
    entries = sorted((e for _, e in chain_items(store.client, store.table, MERCHANT, chain)), key=lambda e: e.sequence)
    (edited,) = {e.payment_id for e in entries if e.sequence == at}
    rewritten, head = Head(chain).extend(MERCHANT, [replace(e, amount=1) if e.payment_id == edited else e
                                                    for e in entries])  # fmt: skip
    for entry in rewritten:  # the same items, under the same keys, with the new amount and hashes
        item = to_item(store.chains.entry_item(0, entry)) | _stored_key(store, entry)
        store.client.put_item(TableName=store.table, Item=item)
    uow = store.unit_of_work()
    uow.add(*store.chains.head_part(store.chains.head(chain), head))
    uow.commit()


def _delete_the_newest_checkpoint(client, table, store, signing, payments) -> str:
    client.delete_item(TableName=table, Key=_checkpoint_key(2))
    return "checkpoint 2: deleted from the table: the write-once copy holds it"


def _delete_every_checkpoint(client, table, store, signing, payments) -> str:
    for sequence in (1, 2):
        client.delete_item(TableName=table, Key=_checkpoint_key(sequence))
    return "checkpoint 1: deleted from the table: the write-once copy holds it"


def _replace_the_newest_checkpoint(client, table, store, signing, payments) -> str:
    """Checkpoint 2 signed again by the ledger's key (another time, so another checkpoint) and put in its place."""
    item = from_item(client.get_item(TableName=table, Key=_checkpoint_key(2), ConsistentRead=True)["Item"])
    document = json.loads(item["document"]) | {"created_at": "2026-11-28T13:00:00.000Z"}
    signature = base64.b64encode(signing.sign(signed_bytes(document))).decode()
    client.put_item(TableName=table, Item=to_item(item | {"document": canonical(document).decode(),
                                                          "signature": signature}))  # fmt: skip
    return "checkpoint 2: replaced in the table: it is not the one the write-once copy holds"


def _rewrite_a_chain_under_a_deleted_checkpoint(client, table, store, signing, payments) -> str:
    """Checkpoint 2 deleted, and the newest entry it signed rewritten: the table's checkpoints alone hold."""
    client.delete_item(TableName=table, Key=_checkpoint_key(2))
    chain = chain_of(payments[3])
    newest = max(entry.sequence for _, entry in chain_items(client, table, MERCHANT, chain))
    _rewrite(store, chain, at=newest)
    assert verify(client, table, [MERCHANT], public_keys={signing.key_id: signing.public_key_pem()}).broken is None
    return f"checkpoint 2, chain {chain}, sequence {newest}: the chain up to here is not the one it signed"


def _sign_into_the_table_only(client, table, store, signing, payments) -> str:
    """Checkpoint 3 signed by the ledger's key over a ledger that moved, and put in the table but never kept."""
    latest, heads = store.latest_checkpoint(), _store_after(store, 7).heads()
    body = unsigned_checkpoint(MERCHANT, latest, heads, NOW, signing.key_id)
    signature = base64.b64encode(signing.sign(signed_bytes(body))).decode()
    uow = store.unit_of_work()
    store.add_checkpoint(uow, Checkpoint(body | {"signature": signature}, positions(heads)))
    uow.commit()
    return "checkpoint 3: not in the write-once copy: the table has one it never kept"


@pytest.mark.parametrize(
    "tamper",
    [
        _delete_the_newest_checkpoint,
        _delete_every_checkpoint,
        _replace_the_newest_checkpoint,
        _rewrite_a_chain_under_a_deleted_checkpoint,
        _sign_into_the_table_only,
    ],
)
def test_the_command_holds_the_table_to_the_checkpoints_write_once_copy(ledger, endpoint, signing, tamper):
    client, table, store = ledger
    payments = _signed_twice(store, signing)
    assert sorted(p.name for p in (_copy_root(table) / MERCHANT).iterdir()) == [
        Path(object_key(MERCHANT, n)).name for n in (1, 2)
    ]
    intact = _command(table, endpoint, signing, "--merchant", MERCHANT)
    assert intact.returncode == 0 and intact.stdout.startswith("intact: 12 entries of 1 merchants"), intact
    named = tamper(client, table, store, signing, payments)
    broken = _command(table, endpoint, signing, "--merchant", MERCHANT)
    assert broken.returncode == 1
    assert broken.stdout.startswith(f"BROKEN: merchant {MERCHANT}, {named}"), broken.stdout


def test_a_merchant_found_only_in_the_copy_is_checked_too(ledger, endpoint, signing):
    client, table, store = ledger
    _signed_twice(store, signing)
    for sequence in (1, 2):
        client.delete_item(TableName=table, Key=_checkpoint_key(sequence))
    for payment in client.scan(TableName=table)["Items"]:  # the merchant's whole ledger deleted
        client.delete_item(TableName=table, Key={"pk": payment["pk"], "sk": payment["sk"]})
    merchants_table = f"merchants-{table}"
    create_table(client, merchants_table, MERCHANTS)  # no merchant configured, and no partition of it left
    broken = _command(table, endpoint, signing, "--merchants-table", merchants_table)
    assert broken.returncode == 1
    assert broken.stdout.startswith(f"BROKEN: merchant {MERCHANT}, checkpoint 1, chain "), broken
    assert "it signed an entry the chain no longer has" in broken.stdout


def _command(table: str, endpoint: str, signing: KmsSigner, *merchants: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tools.verify", "--table", table, "--signing-key", signing.key_id,
               "--endpoint-url", endpoint, "--region", "us-east-1", "--archive-dir", str(_copy_root(table)),
               *merchants]  # fmt: skip
    environment = os.environ | EMULATOR_CREDENTIALS
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=60, check=False)


def test_a_merchant_partition_that_no_configured_merchant_names_is_checked_too(ledger, endpoint, signing):
    client, table, store = ledger
    merchants_table = f"merchants-{table}"
    create_table(client, merchants_table, MERCHANTS)
    for item in merchant_items(MERCHANT, ["arn:aws:iam::123456789012:role/acme"], {}):
        client.put_item(TableName=merchants_table, Item=to_item(item))
    _written(store, 2)
    unconfigured = DynamoLedgerStore(client, table, metadata_cipher=None, merchant="ghost")  # type: ignore[arg-type]
    _written(unconfigured, 1)
    intact = _command(table, endpoint, signing, "--merchants-table", merchants_table)
    assert intact.returncode == 0 and intact.stdout.startswith("intact: 6 entries of 2 merchants"), intact
    lone = _appended(unconfigured, _movement("pay_ghost", 700, 700)[1:])
    broken = _command(table, endpoint, signing, "--merchants-table", merchants_table)
    assert broken.returncode == 1
    assert broken.stdout.startswith(f"BROKEN: merchant ghost, chain {lone.chain}, sequence {lone.sequence}, entry "
                                    "le_pay_ghost_c: payment pay_ghost does not balance"), broken.stdout  # fmt: skip
    only = _command(table, endpoint, signing, "--merchant", MERCHANT)  # asked for one merchant: only that one
    assert only.returncode == 0 and only.stdout.startswith("intact: 4 entries of 1 merchants"), only


ARRIVAL_SECONDS = 0.5  # between payments, unless verify has just read the heads (the emulator slows as it fills)


def test_a_live_ledger_verifies_without_a_false_break_in_20_runs(ledger, monkeypatch):
    """Payments keep arriving through the real store on another thread while verify runs 20 times, and in every run
    at least one arrives between the heads' read and the chains' (the interleaving that looked like an entry
    inserted past its head)."""
    client, table, store = ledger
    _written(store, 3)
    writer = DynamoLedgerStore(client, table, metadata_cipher=None, merchant=MERCHANT)  # type: ignore[arg-type]
    heads_read, appended_after, stop = threading.Event(), threading.Event(), threading.Event()
    arrived: list[str] = []  # each payment, and whether it surely arrived after verify read the heads
    errors: list[Exception] = []

    def payments_arrive() -> None:
        try:
            while not stop.is_set():
                after_the_heads = heads_read.wait(ARRIVAL_SECONDS)
                record(writer, f"pay_live{len(arrived):020d}", 100)
                arrived.append("after the heads" if after_the_heads else "meanwhile")
                if after_the_heads:
                    heads_read.clear()
                    appended_after.set()
        except Exception as error:  # the test fails on it below
            errors.append(error)
            appended_after.set()

    read_heads = DynamoChainRecords.heads

    def heads_then_a_payment(self: DynamoChainRecords) -> list[Head]:
        heads = read_heads(self)
        heads_read.set()
        assert appended_after.wait(30), "no payment arrived"
        appended_after.clear()
        return heads

    monkeypatch.setattr(DynamoChainRecords, "heads", heads_then_a_payment)
    arriving = threading.Thread(target=payments_arrive)
    arriving.start()
    try:
        breaks = [verify(client, table, [MERCHANT]).broken for _ in range(20)]
    finally:
        stop.set()
        arriving.join()
    assert not errors, errors[:1]
    assert arrived.count("after the heads") == 20
    assert [str(broken) for broken in breaks if broken] == []
    monkeypatch.undo()
    report = verify(client, table, [MERCHANT])
    assert report.broken is None and report.entries == 2 * (3 + len(arrived))  # at rest, every entry is covered


def test_a_checkpoint_that_names_another_merchant_is_named():
    """One merchant's checkpoint put among another's (signed, linked and consistent for its own ledger)."""
    world = fake_world(FakeGateway())
    write_checkpoint(world.deps)
    (checkpoint,) = world.deps.store.checkpoints()
    keys = {world.deps.signer.key_id: world.deps.signer.public_key_pem()}
    assert checkpoints_break(FAKE_MERCHANT, [checkpoint], keys, {}) is None
    assert checkpoints_break("merchant-b", [checkpoint], keys, {}) == Break(
        None, None, None, f"it names merchant {FAKE_MERCHANT}, not this one", checkpoint=1
    )


@pytest.mark.parametrize(
    "stored_under",
    [
        lambda payment, other: Partition.PAYMENT.key(MERCHANT, payment),  # a partition that is no payment's ledger
        lambda payment, other: Partition.LEDGER.key("merchant-b", payment),  # the same payment's, of another merchant
        lambda payment, other: Partition.LEDGER.key(MERCHANT, other),  # another payment's ledger
    ],
    ids=["a partition that is no ledger", "another merchant's ledger", "another payment's ledger"],
)
def test_a_chained_entry_stored_anywhere_but_its_payments_ledger_is_named(ledger, stored_under):
    """The item moved whole, its chain attributes untouched: the chain still reaches it, but GET
    /payments/{id}/ledger (the payment's ledger partition) no longer shows it."""
    client, table, store = ledger
    payments = _written(store, 3)
    credit = _credit(store, payments[1])
    key = _entry_key(store, payments[1])
    item = client.get_item(TableName=table, Key=key)["Item"]
    client.delete_item(TableName=table, Key=key)
    client.put_item(TableName=table, Item=item | {"pk": {"S": stored_under(payments[1], payments[2])}})
    assert [entry.id for entry in store.entries(payments[1])] == [f"le_{payments[1]}_d"]
    _, broken = verify(client, table, [MERCHANT]).broken
    assert (broken.chain, broken.sequence, broken.entry_id) == (credit.chain, credit.sequence, credit.id)
    assert broken.reason.endswith(f"not in payment {payments[1]}'s ledger")


def test_a_stored_amount_that_is_not_a_whole_number_is_named_not_truncated(ledger):
    client, table, store = ledger
    payments = _written(store, 3)  # the first payment's amount is 100
    credit = _credit(store, payments[0])
    client.update_item(TableName=table, Key=_entry_key(store, payments[0]), UpdateExpression="SET amount = :a",
                       ExpressionAttributeValues={":a": {"N": "100.999"}})  # fmt: skip
    _, broken = verify(client, table, [MERCHANT]).broken
    assert (broken.chain, broken.sequence, broken.entry_id) == (credit.chain, credit.sequence, credit.id)
    assert broken.reason == "an amount of 100.999 as stored: every amount is a whole number above 0"


def test_a_checkpoint_stored_under_another_checkpoints_key_is_refused_by_the_run_and_named(ledger, signing):
    """Checkpoint 2's item copied under a higher sequence's key: the newest the table gives is that copy, so a run
    would number after 2 forever, never able to put what it numbers."""
    client, table, store = ledger
    _signed_twice(store, signing)
    item = client.get_item(TableName=table, Key=_checkpoint_key(2))["Item"]
    client.put_item(TableName=table, Item=item | _checkpoint_key(999_999))
    for n in (7, 8):
        assert _checkpoint(_store_after(store, n), signing) == "refused"
    assert sorted(p.name for p in (_copy_root(table) / MERCHANT).iterdir()) == [
        Path(object_key(MERCHANT, n)).name for n in (1, 2)
    ]
    keys = {signing.key_id: signing.public_key_pem()}
    for copy in (read_directory(_copy_root(table)), None):
        _, broken = verify(client, table, [MERCHANT], public_keys=keys, copy=copy).broken
        assert str(broken) == "checkpoint 2: stored in the table under CHECKPOINT#000000999999, not its own key"


def test_a_chain_truncated_and_regrown_under_the_hash_it_signed_is_refused_by_the_run(ledger, signing):
    """A table writer deletes a chain's entries and head, grows the chain again past the signed position with other
    movements, and stores the signed hash on the entry at that position: the run recomputes that entry's hash from
    its content and the one before it, so it refuses (and the alarm fires) instead of signing the rewritten chain."""
    client, table, store = ledger
    (payment,) = _written(store, 1)
    chain = chain_of(payment)
    assert _checkpoint(store, signing) == "written"
    signed = {entry.sequence: entry for entry in store.entries(payment)}
    for entry in signed.values():
        client.delete_item(TableName=table, Key=_stored_key(store, entry))
    head = {"pk": Partition.CHAIN.key(MERCHANT, HEADS), "sk": f"HEAD#{chain:02d}"}
    client.delete_item(TableName=table, Key=to_item(head))
    record(store, payment, 777_777)
    record(store, next(f"pay_{i:024d}" for i in range(1, 10**4) if chain_of(f"pay_{i:024d}") == chain), 5)
    position = max(signed)
    forged = next(entry for entry in store.entries(payment) if entry.sequence == position)
    client.update_item(TableName=table, Key=_stored_key(store, forged), UpdateExpression="SET #hash = :hash",
                       ExpressionAttributeNames={"#hash": "hash"},
                       ExpressionAttributeValues={":hash": {"S": signed[position].hash}})  # fmt: skip
    assert _checkpoint(store, signing) == "refused"


def test_a_ledger_of_holds_captures_and_cancels_verifies_and_its_heads_count_the_hold_accounts(ledger):
    """Authorisations book holds on the chains like any movement: held, captured in part, cancelled."""
    client, table, store = ledger
    card = MaskedCard("visa", "4242", 12, 2030, "fp_1")
    held = {}
    for n, finish in enumerate(("hold", "capture", "cancel")):
        new = Payment(f"pay_{n:024d}", 1000, "USD", card, NOW, capture=False)
        _commit(store, lambda uow, new=new: store.add_payment(uow, new))
        authorized, entries = new.authorize(f"ch_{n}", NOW)
        _commit(store, lambda uow, new=new, a=authorized, e=entries: store.settle_payment(uow, new, a, e))
        held[new.id] = finish
        if finish == "hold":
            continue
        kind = ActionKind.CAPTURE if finish == "capture" else ActionKind.CANCEL
        action = Action(kind, NOW, amount=400 if finish == "capture" else 0)
        _commit(store, lambda uow, a=authorized, action=action: store.claim_action(uow, a, action))
        claimed = store.get_payment(new.id)
        after = claimed.capture_amount(400, NOW) if finish == "capture" else claimed.cancel(REQUESTED, NOW)
        _commit(store, lambda uow, c=claimed, after=after: store.settle_action(uow, c, *after))
    report = verify(client, table, [MERCHANT])
    assert report.broken is None and report.entries == 2 + 6 + 4
    totals: dict[str, int] = {}
    for head in store.heads():
        for (account, _currency), amount in head.balances.items():
            totals[account] = totals.get(account, 0) + amount
    assert {account: amount for account, amount in totals.items() if amount} == {
        HOLD: 1000, HOLD_OFFSET: -1000, RECEIVABLE: 400, MERCHANT_BALANCE: -400
    }  # fmt: skip


REQUESTED = CancellationReason.REQUESTED_BY_CUSTOMER


def _commit(store, add) -> None:
    uow = store.unit_of_work()
    add(uow)
    uow.commit()
