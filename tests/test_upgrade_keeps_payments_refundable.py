"""A payment captured by an earlier version (before merchants: keys without the merchant, adopted by
tools/adopt_records.py) can be refunded: it has no ``refundable_left`` nor ``amount_reserved`` attribute and stores
``partially_refunded`` as its status, and its first refund reservation fills both in from what was read, on the
condition that nothing was refunded since. Each refund gets a 201 or a 400, never a 500."""

import uuid

import boto3
import pytest

from lambdas.adapters.dynamo import to_item
from lambdas.adapters.ledger.payments import PAYMENT_SK
from lambdas.bootstrap import AwsAdapters
from lambdas.domain.cards import Card, CardNumber, MaskedCard
from lambdas.domain.errors import InvalidRequest
from lambdas.domain.merchants import Merchant
from lambdas.domain.payments import Payment
from lambdas.domain.rules import RuleSet
from lambdas.ports import LostRace
from lambdas.service import PaymentService
from lambdas.storage_schema import LEDGER, Partition
from tests.support.fakes import FakeClock
from tests.support.fakes_gateway import FakeGateway
from tests.support.pre_merchant_keys import move_to_pre_merchant_keys
from tools.adopt_records import adopt


def test_a_payment_captured_before_the_upgrade_can_be_refunded(moto_resources):
    env, dynamodb = moto_resources, boto3.client("dynamodb")
    clock, gateway = FakeClock(), FakeGateway()
    deps = AwsAdapters(env, gateway, clock).dependencies(Merchant("merchant-a", RuleSet()))
    store = deps.store
    # a captured payment as the previous version stored it: status, amount, amount_refunded; no new attributes
    old = Payment(f"pay_{uuid.uuid4().hex[:24]}", 1000, "USD", MaskedCard("visa", "4242", 12, 2030, "fp"), clock())
    charge = gateway.charge(old.id, 1000, "USD", Card(CardNumber("4242424242424242"), 12, 2030, cvc="737"), old.id)
    gateway.refund(charge.id, 300, "re_before_the_upgrade", "re_before_the_upgrade")
    uow = store.unit_of_work()
    store.add_payment(uow, old)
    uow.commit()
    dynamodb.update_item(
        TableName=env["LEDGER_TABLE"],
        Key=to_item({LEDGER.partition_key: Partition.PAYMENT.key("merchant-a", old.id), LEDGER.sort_key: PAYMENT_SK}),
        UpdateExpression="SET #s = :s, charge_id = :c, amount_refunded = :r"
        " REMOVE refundable_left, amount_reserved, #g",
        ExpressionAttributeNames={"#s": "status", "#g": LEDGER.indexes[0].partition_key},
        ExpressionAttributeValues=to_item({":s": "partially_refunded", ":c": charge.id, ":r": 300}),
    )
    move_to_pre_merchant_keys(dynamodb, env["LEDGER_TABLE"], "merchant-a")
    adopt(dynamodb, env["LEDGER_TABLE"], "merchant-a")  # the upgrade's migration (tools/adopt_records.py)
    service = PaymentService(deps)
    assert service.get_payment(old.id).body["status"] == "partially_refunded"
    as_read_before = store.get_payment(old.id)  # by a refund that raced the next one
    answer = service.refund(old.id, 500, "refund-old")
    assert answer.status == 201 and gateway.refunded_total(charge.id) == 800
    after = service.get_payment(old.id).body
    assert (after["status"], after["amount_refunded"]) == ("partially_refunded", 800)
    with pytest.raises(InvalidRequest):  # 200 are left of the old item's 1000
        service.refund(old.id, 201, "too-much")
    _, late = as_read_before.reserve_refund("re_late", 250, clock())  # 700 left, as it read: not so any more
    uow = store.unit_of_work()
    store.reserve_refund(uow, as_read_before, late)
    with pytest.raises(LostRace):
        uow.commit()
