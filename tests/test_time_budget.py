"""Every request is answered before the function's timeout, whatever the gateway does: the client's
attempts are bounded by the Lambda context's remaining time, also when a retry resumes a payment and makes two
gateway calls (a lookup, then the charge). Through the real handlers, the real client and the sandbox process."""

import time

import pytest

from lambdas import bootstrap
from tests.support.api import card
from tests.support.events import body_of
from tools.api_events import LambdaContext, api_event, handler_for, route_for

FUNCTION_TIMEOUT_SECONDS = 8.0  # the context a test invocation gets: far below what the client alone would take (30 s)
SILENT_MS = 12_000  # the gateway's latency: longer than the whole budget


@pytest.fixture
def patient_client(aws_env, monkeypatch):
    """A client that, left alone, would wait 3 attempts x 10 s on a silent gateway."""
    monkeypatch.setenv("GATEWAY_READ_TIMEOUT", "10")
    monkeypatch.setenv("GATEWAY_ATTEMPTS", "3")
    bootstrap.adapters.cache_clear()


def timed_payment(key: str) -> tuple[dict, float]:
    event = api_event("POST", "/payments", {"amount": 1200, "currency": "usd", "source": {"card": card()}},
                      headers={"Idempotency-Key": key})  # fmt: skip
    route, _ = route_for("POST", "/payments")
    started = time.monotonic()
    response = handler_for(route)(event, LambdaContext(FUNCTION_TIMEOUT_SECONDS))
    return response, time.monotonic() - started


def test_a_silent_gateway_is_a_504_before_the_function_times_out(patient_client, sandbox):
    sandbox.faults(latency_ms=SILENT_MS)
    response, elapsed = timed_payment("slow")
    assert response["statusCode"] == 504, response["body"]
    assert body_of(response)["error"]["payment_id"].startswith("pay_")
    assert elapsed < FUNCTION_TIMEOUT_SECONDS


def test_a_resumed_retry_with_two_gateway_calls_also_ends_in_time(patient_client, sandbox):
    sandbox.faults(latency_ms=SILENT_MS)
    first, _ = timed_payment("resumed")
    assert first["statusCode"] == 504
    retried, elapsed = timed_payment("resumed")  # looks the charge up, then would charge: both slow
    assert retried["statusCode"] == 504, retried["body"]
    assert body_of(retried)["error"]["payment_id"] == body_of(first)["error"]["payment_id"]
    assert elapsed < FUNCTION_TIMEOUT_SECONDS
    sandbox.faults(latency_ms=0)
    settled, _ = timed_payment("resumed")
    payment_id = body_of(first)["error"]["payment_id"]
    assert settled["statusCode"] == 201 and body_of(settled)["id"] == payment_id
    assert [c["reference"] for c in sandbox.charges()].count(payment_id) == 1
