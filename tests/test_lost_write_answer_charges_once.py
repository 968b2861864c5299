"""A payment whose settling DynamoDB transaction was applied but whose answer was lost is answered 201 and charged
once, never a 500.

botocore (standard mode, two attempts) sends the same TransactWriteItems again. On AWS the attempt's
ClientRequestToken makes the resend a no-op; the emulator ignores the token, so here the resend meets the first
attempt's own writes, as a resend without a token would on AWS."""

import boto3

from lambdas import bootstrap
from tests.support.api import pay, tokenize
from tests.support.events import body_of


def test_a_settled_payment_whose_dynamodb_answer_was_lost_is_answered_201_and_charged_once(aws_env, sandbox):
    token = tokenize()
    transactions = []

    def resend_the_settlement_once(attempts, operation, **_):
        """botocore's retry decision: 0 means "send it again at once", as after a read timeout."""
        if operation.name != "TransactWriteItems" or attempts != 1:
            return None
        transactions.append(operation.name)
        return 0 if len(transactions) == 2 else None  # the first records the pending payment; the second settles

    events = boto3.DEFAULT_SESSION.events
    events.register_first("needs-retry.dynamodb.TransactWriteItems", resend_the_settlement_once)
    try:
        bootstrap.adapters.cache_clear()  # clients built on the session that resends
        request = {"amount": 1999, "currency": "usd", "source": {"token": token}}
        first = pay(request, key="k-lost")
        again = pay(request, key="k-lost")
    finally:
        events.unregister("needs-retry.dynamodb.TransactWriteItems", resend_the_settlement_once)
        bootstrap.adapters.cache_clear()
    assert len(transactions) >= 2, "the settling transaction was not resent"
    assert (first["statusCode"], body_of(first)["status"]) == (201, "succeeded"), body_of(first)
    assert again["statusCode"] == 201 and body_of(again)["id"] == body_of(first)["id"]
    assert [charge["status"] for charge in sandbox.charges()] == ["succeeded"]
