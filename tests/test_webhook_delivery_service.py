"""The deployed path in process, as `make local` runs it: the handlers on moto and the Sparkle sandbox, an endpoint
registered through the API at http://127.0.0.1 (allowed by the local setting), the delivery function run on its
schedule, and a receiver that first fails, then takes each event, verified by the SDK from the raw body."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from client import verify_webhook
from lambdas import bootstrap
from lambdas.handlers import deliver
from tests.support.api import pay
from tests.support.events import body_of, invoke

pytestmark = pytest.mark.integration
VISA = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "737"}


class Receiver(ThreadingHTTPServer):
    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = failures  # the first requests answered 503
        self.received: list[tuple[dict[str, str], bytes]] = []


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))
        failing = len(self.server.received) <= self.server.failures
        self.send_response(503 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def local_delivery(aws_env, monkeypatch):
    """The local settings (tools/local.py): loopback endpoints, waits of no time, and a dead-letter queue."""
    queue = boto3.client("sqs").create_queue(QueueName="webhook-dead-letters")["QueueUrl"]
    settings = {"WEBHOOK_LOOPBACK_HTTP": "1", "WEBHOOK_RETRY_WAITS": "0,0", "WEBHOOK_DEAD_LETTER_QUEUE": queue}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    bootstrap.adapters.cache_clear()
    return queue


def test_a_receiver_gets_each_event_signed_and_the_sdk_verifies_it(local_delivery, receiver):
    """Breaks if an event of a payment never reached the endpoint, reached it unsigned, or was signed over bytes
    other than those sent."""
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks"
    created = invoke("POST", "/webhook_endpoints", {"url": url, "events": ["*"]}, headers={"Idempotency-Key": "we"})
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
