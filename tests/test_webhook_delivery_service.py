"""The deployed path in process, as `make local` runs it: the handlers on moto and the Sparkle sandbox, an endpoint
registered through the API at http://127.0.0.1 (allowed by the local setting), the delivery function run on its
schedule, and a receiver that first fails, then takes each event, verified by the SDK from the raw body."""

import json
from collections.abc import Iterator

import boto3
import pytest

from client import verify_webhook
from lambdas.handlers import deliver
from tests.support.api import pay
from tests.support.events import body_of, invoke
from tests.support.webhook_receiver import Receiver, receiving, use_local_delivery

pytestmark = pytest.mark.integration
VISA = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "737"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(failures=1) as server:
        yield server


@pytest.fixture
def local_delivery(aws_env, monkeypatch):
    return use_local_delivery(monkeypatch)


def test_a_receiver_gets_each_event_signed_and_the_sdk_verifies_it(local_delivery, receiver):
    """Breaks if an event of a payment never reached the endpoint, reached it unsigned, or was signed over bytes
    other than those sent."""
    created = invoke(
        "POST", "/webhook_endpoints", {"url": receiver.url, "events": ["*"]}, headers={"Idempotency-Key": "we"}
    )
    assert created["statusCode"] == 201, created["body"]
    secret = body_of(created)["secret"]
    paid = body_of(pay({"amount": 700, "currency": "usd", "source": {"card": VISA}}))
    for _ in range(3):  # the first attempt fails (503); the next run, due at once here, delivers
        deliver.handler({"source": "aws.events"}, None)
    delivered = [body for headers, body in receiver.received[1:]]
    assert len(receiver.received) == 2 and receiver.received[0][1] == receiver.received[1][1]
    headers, body = receiver.received[1]
    event = verify_webhook(body, headers["Payments-Signature"], secret)
    assert event.id == headers["Payments-Event-Id"] == json.loads(delivered[0])["id"]
    assert json.loads(body)["data"]["object"]["id"] == paid["id"]
    attempts = body_of(invoke("GET", f"/events/{event.id}/deliveries"))["data"]
    assert [a["status"] for a in attempts] == [503, 200]
    assert boto3.client("sqs").receive_message(QueueUrl=local_delivery).get("Messages", []) == []
