"""Attack: an operator upgrades a deployment that already holds payments and entries (written by df3f756, the
version before chains: entries without ``payment_id``, ``chain``, ``sequence``, ``hash`` or the ``by_chain``
attributes, payments without the ``by_merchant`` attributes, no heads). Nothing in the upgrade fills them in
(tools/adopt_records.py predates chains; there is no backfill), so:

- GET /balances sums the heads only: it leaves out every entry written before the upgrade, and after a refund of
  an old payment it shows the merchant owing the refund against nothing (contract: "debits minus credits of every
  entry ... agrees with the sum of the merchant's ledger entries at every moment");
- GET /payments lists from the by_merchant index only: payments made before the upgrade never appear
  (contract: "paging through every page returns each payment exactly once");
- make verify says intact while the old entries sit outside every chain (issue 10 item 4: "it checks that
  balances equal the fold of entries").

Fixed by a migration that chains the old entries and indexes the old payments (or reads that cover them): the
upgrade runs tools/chain_records.py (README, "Upgrading a deployment that holds data"), and verify names the
entries left outside the chains until it has."""

import boto3

from lambdas.adapters.dynamo import from_item, to_item
from lambdas.adapters.ledger_store import HEADS, PAYMENT_SK
from lambdas.bootstrap import AwsAdapters
from lambdas.domain.chains import fold_balances
from lambdas.domain.merchants import Merchant
from lambdas.domain.rules import RuleSet
from lambdas.service import PaymentService
from lambdas.storage_schema import LEDGER, Partition
from tests.fakes import FakeClock
from tests.fakes_gateway import FakeGateway
from tests.test_use_cases import PaymentCommand, card
from tools.chain_records import chain_records
from tools.verify import verify

MERCHANT = "merchant-a"
PK, SK = LEDGER.partition_key, LEDGER.sort_key
_, BY_MERCHANT, BY_CHAIN = LEDGER.indexes
NEW_ENTRY_FIELDS = ("payment_id", "chain", "sequence", "hash", BY_CHAIN.partition_key, BY_CHAIN.sort_key)


def _as_before_chains(dynamodb, table: str) -> None:
    """Every item of MERCHANT as df3f756 stored it: the attributes this version added removed, the heads deleted."""
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
