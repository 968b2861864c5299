"""A payment left pending under the keys of the version before merchants (``PAYMENT#<id>``, pending in the index
partition ``pending``) is adopted by a merchant (tools/adopt_records.py, under ``PAYMENT#<merchant>#<id>`` and
``pending#<merchant>``) and then reconciled: the card the gateway charged just before the upgrade is settled once,
and the old record is marked adopted and leaves the pending index."""

import uuid
from datetime import timedelta

import boto3

from lambdas.adapters.dynamo import from_item, to_item
from lambdas.adapters.ledger.payments import PAYMENT_SK
from lambdas.bootstrap import AwsAdapters
from lambdas.domain.cards import Card, CardNumber, MaskedCard
from lambdas.domain.merchants import Merchant
from lambdas.domain.payments import Payment, Status
from lambdas.domain.rules import RuleSet
from lambdas.storage_schema import LEDGER, Partition
from tests.support.fakes import FakeClock
from tests.support.fakes_gateway import FakeGateway
from tests.support.pre_merchant_keys import move_to_pre_merchant_keys
from tools.adopt_records import adopt

MERCHANT = "merchant-a"


def test_a_payment_left_pending_before_the_upgrade_is_adopted_then_reconciled(moto_resources):
    env, dynamodb = moto_resources, boto3.client("dynamodb")
    table, clock, gateway = env["LEDGER_TABLE"], FakeClock(), FakeGateway()
    adapters = AwsAdapters(env, gateway, clock)
    store = adapters.dependencies(Merchant(MERCHANT, RuleSet())).store
    pending = Payment(f"pay_{uuid.uuid4().hex[:24]}", 1000, "USD", MaskedCard("visa", "4242", 12, 2030, "fp"), clock())
    uow = store.unit_of_work()
    store.add_payment(uow, pending)
    uow.commit()
    # the gateway charged the card; its answer was lost, so the payment stayed pending; then the upgrade
    gateway.charge(pending.id, 1000, "USD", Card(CardNumber("4242424242424242"), 12, 2030, cvc="737"), pending.id)
    assert move_to_pre_merchant_keys(dynamodb, table, MERCHANT) == 1
    assert store.get_payment(pending.id) is None  # before adoption the merchant cannot see it

    assert adopt(dynamodb, table, MERCHANT) == {"adopted": 1}
    assert adopt(dynamodb, table, MERCHANT) == {"already_adopted": 1}  # a second run changes nothing
    clock.advance(timedelta(minutes=5))
    assert adapters.tenancy().reconcile()["settled"] == 1

    assert store.get_payment(pending.id).status is Status.SUCCEEDED and len(store.entries(pending.id)) == 2
    old_key = {LEDGER.partition_key: f"{Partition.PAYMENT.value}{pending.id}", LEDGER.sort_key: PAYMENT_SK}
    old = from_item(dynamodb.get_item(TableName=table, Key=to_item(old_key))["Item"])
    assert old["adopted_by"] == MERCHANT and LEDGER.indexes[0].partition_key not in old
    assert len(gateway.charges()) == 1
