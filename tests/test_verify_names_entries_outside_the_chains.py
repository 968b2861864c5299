"""`make verify` names a ledger entry that someone with table access moved, inserted or copied outside the chains
(README: "the chains catch what someone with table access, or a restore, would change").

An entry's hash covers its ``payment_id`` attribute, not the key it is stored under, and the chains are read
through the ``by_chain`` index, while GET /payments/{id}/ledger reads the payment's partition by key. So verify
also holds each payment's partition to the chains (every entry there is chained, under the payment its hash
names):

- an entry moved to another payment's partition (its attributes untouched) is named, although its chain still
  checks: both payments' ledgers changed;
- an entry put into a payment's partition without the index attributes (``chain_pk``/``chain_seq``), which no
  chain reaches, is named, since GET /payments/{id}/ledger would show it."""

import boto3

from lambdas.adapters.dynamo import from_item, to_item
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.domain.chains import chain_of
from lambdas.storage_schema import LEDGER, Partition
from tests.support.ledger_table import record
from tools.verify import verify

MERCHANT = "merchant-a"
PK, SK = LEDGER.partition_key, LEDGER.sort_key


def _setup(moto_resources):
    client, table = boto3.client("dynamodb"), moto_resources["LEDGER_TABLE"]
    store = DynamoLedgerStore(client, table, metadata_cipher=None, merchant=MERCHANT)  # type: ignore[arg-type]
    payments = [f"pay_{i:024d}" for i in range(4)]
    for i, payment in enumerate(payments):
        record(store, payment, 100 + i)
    assert verify(client, table, [MERCHANT]).broken is None
    return client, table, store, payments


def _items(client, table, payment_id: str) -> list[dict]:
    partition = to_item({":pk": Partition.LEDGER.key(MERCHANT, payment_id)})
    answer = client.query(TableName=table, KeyConditionExpression="#pk = :pk", ExpressionAttributeNames={"#pk": PK},
                          ExpressionAttributeValues=partition)  # fmt: skip
    return [from_item(item) for item in answer["Items"]]


def test_an_entry_moved_to_another_payment_is_named(moto_resources):
    client, table, store, (victim, other, *_) = _setup(moto_resources)
    (credit,) = [item for item in _items(client, table, victim) if item["direction"] == "credit"]
    client.delete_item(TableName=table, Key=to_item({PK: credit[PK], SK: credit[SK]}))
    client.put_item(TableName=table, Item=to_item(credit | {PK: Partition.LEDGER.key(MERCHANT, other)}))
    # what a merchant now sees: the victim's ledger lost its credit, the other payment's shows three entries
    assert len(store.entries(victim)) == 1 and len(store.entries(other)) == 3
    report = verify(client, table, [MERCHANT])
    assert report.broken is not None, "verify says intact although an entry was moved to another payment"


def test_an_entry_inserted_outside_the_chains_is_named(moto_resources):
    client, table, store, (victim, *_) = _setup(moto_resources)
    forged = {
        PK: Partition.LEDGER.key(MERCHANT, victim),
        SK: "ENTRY#2026-11-28T12:00:00.000Z#2#le_forged",
        "id": "le_forged",
        "payment_id": victim,
        "account": "merchant_balance",
        "direction": "credit",
        "amount": 5000,
        "currency": "USD",
        "created_at": "2026-11-28T12:00:00.000Z",
        "chain": chain_of(victim),
    }
    client.put_item(TableName=table, Item=to_item(forged))
    assert "le_forged" in [entry.id for entry in store.entries(victim)]  # GET /payments/{id}/ledger shows it
    report = verify(client, table, [MERCHANT])
    assert report.broken is not None, "verify says intact although an entry was inserted into a payment's ledger"


def test_a_copy_of_a_chained_entry_under_another_key_is_named(moto_resources):
    """The copy keeps the original's id (and its hash, which still names its payment) but drops the index
    attributes, so no chain reaches it; GET /payments/{id}/ledger shows it beside the original."""
    client, table, store, (victim, *_) = _setup(moto_resources)
    (credit,) = [item for item in _items(client, table, victim) if item["direction"] == "credit"]
    copy = {name: value for name, value in credit.items() if name not in ("chain_pk", "chain_seq")}
    client.put_item(TableName=table, Item=to_item(copy | {SK: f"{credit[SK]}#copy", "amount": 999_999}))
    assert [entry.id for entry in store.entries(victim)].count(credit["id"]) == 2
    report = verify(client, table, [MERCHANT])
    assert report.broken is not None, "verify says intact although a chained entry was copied into the ledger"
    merchant, broken = report.broken
    assert (merchant, broken.entry_id) == (MERCHANT, credit["id"])
    assert "outside every chain" in broken.reason
