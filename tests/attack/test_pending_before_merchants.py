"""Attack: a deployment of the merchants change over existing data.

The previous version keyed a payment ``PAYMENT#<id>`` and put a pending one in the index partition ``pending``;
the merchants change keys everything ``PAYMENT#<merchant>#<id>`` and reconciles ``pending#<merchant>``. Without a
migration, a payment left pending by a lost gateway answer just before the upgrade (the card *was* charged) is
never settled, read or refunded again. ``tools/adopt_records.py`` hands such records to a merchant; the attack's
own expectation (reconcile settling the old item in place) is replaced by that: the service reads only
merchant keys, so the record must become the merchant's, not stay an orphan that one job still knows."""

import uuid
from datetime import timedelta

import boto3

from lambdas.adapters.dynamo import from_item, to_item
from lambdas.adapters.ledger_store import PAYMENT_SK
from lambdas.bootstrap import AwsAdapters
from lambdas.domain.cards import Card, CardNumber, MaskedCard
from lambdas.domain.merchants import Merchant
from lambdas.domain.payments import Payment, Status
from lambdas.domain.rules import RuleSet
from lambdas.storage_schema import LEDGER, Partition
from tests.attack.legacy import move_to_pre_merchant_keys
from tests.fakes import FakeClock
from tests.fakes_gateway import FakeGateway
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
    assert store.get_payment(pending.id) is None  # what the attack showed: the merchant cannot see it

    assert adopt(dynamodb, table, MERCHANT) == {"adopted": 1}
    assert adopt(dynamodb, table, MERCHANT) == {"already_adopted": 1}  # a second run changes nothing
    clock.advance(timedelta(minutes=5))
    assert adapters.tenancy().reconcile()["settled"] == 1

    assert store.get_payment(pending.id).status is Status.SUCCEEDED and len(store.entries(pending.id)) == 2
    old_key = {LEDGER.partition_key: f"{Partition.PAYMENT.value}{pending.id}", LEDGER.sort_key: PAYMENT_SK}
    old = from_item(dynamodb.get_item(TableName=table, Key=to_item(old_key))["Item"])
    assert old["adopted_by"] == MERCHANT and LEDGER.indexes[0].partition_key not in old
    assert len(gateway.charges()) == 1
