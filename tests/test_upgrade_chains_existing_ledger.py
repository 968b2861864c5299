"""A deployment upgraded over payments and entries written before the ledger had chains (entries without
``payment_id``, ``chain``, ``sequence``, ``hash`` or the ``by_chain`` attributes, payments without the
``by_merchant`` attributes, no heads) keeps its contract once the upgrade runs tools/chain_records.py (README,
"Upgrading a deployment that holds data"):

- GET /balances counts the entries written before the upgrade, and a refund of an old payment is owed against it
  (contract: "debits minus credits of every entry ... agrees with the sum of the merchant's ledger entries at
  every moment");
- GET /payments lists the payments made before the upgrade (contract: "paging through every page returns each
  payment exactly once");
- make verify names the entries left outside the chains until chain_records has run."""

import boto3

from lambdas.adapters.dynamo import from_item, to_item
from lambdas.adapters.ledger.chains import HEADS
from lambdas.adapters.ledger.payments import PAYMENT_SK
from lambdas.bootstrap import AwsAdapters
from lambdas.domain.chains import fold_balances
from lambdas.domain.merchants import Merchant
from lambdas.domain.rules import RuleSet
from lambdas.service import PaymentService
from lambdas.storage_schema import BY_CHAIN, BY_MERCHANT, LEDGER, Partition
from lambdas.use_cases.payments import PaymentCommand
from tests.support.fakes import FakeClock
from tests.support.fakes_gateway import FakeGateway
from tests.support.payments import card
from tools.chain_records import chain_records
from tools.verify import verify

MERCHANT = "merchant-a"
PK, SK = LEDGER.partition_key, LEDGER.sort_key
NEW_ENTRY_FIELDS = ("payment_id", "chain", "sequence", "hash", BY_CHAIN.partition_key, BY_CHAIN.sort_key)


def _as_before_chains(dynamodb, table: str) -> None:
    """Every item of MERCHANT as the version before chains stored it: the chain and listing attributes removed, the
    heads deleted."""
    for item in [from_item(i) for i in dynamodb.scan(TableName=table)["Items"]]:
        key = {PK: item[PK], SK: item[SK]}
        if item[PK] == Partition.CHAIN.key(MERCHANT, HEADS):
            dynamodb.delete_item(TableName=table, Key=to_item(key))
        elif item[PK].startswith(Partition.LEDGER.key(MERCHANT, "")):
            dynamodb.put_item(
                TableName=table, Item=to_item({k: v for k, v in item.items() if k not in NEW_ENTRY_FIELDS})
            )
        elif item[PK].startswith(Partition.PAYMENT.key(MERCHANT, "")) and item[SK] == PAYMENT_SK:
            dropped = (BY_MERCHANT.partition_key, BY_MERCHANT.sort_key)
            dynamodb.put_item(TableName=table, Item=to_item({k: v for k, v in item.items() if k not in dropped}))


def _deployment(moto_resources, migrated: bool = True):
    env, dynamodb = moto_resources, boto3.client("dynamodb")
    deps = AwsAdapters(env, FakeGateway(), FakeClock()).dependencies(Merchant(MERCHANT, RuleSet()))
    service = PaymentService(deps)
    old = [
        service.create_payment(PaymentCommand(amount, "usd", card=card()), "req", f"old-{amount}").body["id"]
        for amount in (1000, 2500)
    ]
    _as_before_chains(dynamodb, env["LEDGER_TABLE"])  # the upgrade happens here
    if migrated:
        counts = chain_records(dynamodb, env["LEDGER_TABLE"], MERCHANT)
        assert counts == {"entries_chained": 4, "payments_listed": 2}
        assert chain_records(dynamodb, env["LEDGER_TABLE"], MERCHANT) == {}  # a second run changes nothing
        assert verify(dynamodb, env["LEDGER_TABLE"], [MERCHANT]).broken is None
    return env, dynamodb, deps, service, old


def test_balances_count_the_entries_written_before_the_upgrade(moto_resources):
    _env, _dynamodb, deps, service, old = _deployment(moto_resources)
    assert service.refund(old[0], 300, "refund-after-upgrade").status == 201
    every_entry = [entry for payment in old for entry in deps.store.entries(payment)]
    folded = {
        (account, currency): amount for (account, currency), amount in fold_balances(every_entry).items() if amount
    }
    shown = {(b["account"], b["currency"]): b["amount"] for b in service.balances().body["balances"] if b["amount"]}
    assert shown == folded, "GET /balances disagrees with the sum of the merchant's ledger entries"


def test_payments_made_before_the_upgrade_are_listed(moto_resources):
    _env, _dynamodb, _deps, service, old = _deployment(moto_resources)
    listed = [payment["id"] for payment in service.list_payments("100", None).body["data"]]
    assert sorted(listed) == sorted(old), "GET /payments leaves out the payments made before the upgrade"


def test_verify_does_not_call_a_ledger_with_unchained_entries_intact(moto_resources):
    env, dynamodb, deps, _service, old = _deployment(moto_resources, migrated=False)
    assert all(entry.hash is None for payment in old for entry in deps.store.entries(payment))
    report = verify(dynamodb, env["LEDGER_TABLE"], [MERCHANT])
    assert report.broken is not None, f"verify says intact after checking {report.entries} of 4 entries"
