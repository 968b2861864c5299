"""The Sparkle client against a network or processor that misbehaves after the request arrived: any unusable answer
is a gateway error (a 502 with the payment's id, its key retryable at once), and no answer outlives the request's
deadline."""

import json
import time

import pytest

from lambdas import deadline
from lambdas.adapters.sparkle import RetryPolicy, SparkleClient
from lambdas.domain.cards import Card, CardNumber
from lambdas.edge import ApiHandler
from lambdas.gateway import GatewayError
from lambdas.handlers.charge import create_payment
from lambdas.routes import Function
from tests.support.bad_gateway import BadGateway, bad_gzip, deeply_nested, trickle, truncated_body
from tests.support.fakes import fake_world
from tools.api_events import LambdaContext, api_event

CARD = Card(CardNumber("4242424242424242"), 12, 2030, cvc="737")


def client(url: str, **kwargs) -> SparkleClient:
    return SparkleClient(
        url,
        lambda: "sk_test_sandbox",
        connect_timeout=1.0,
        read_timeout=kwargs.pop("read", 2.0),
        retry=RetryPolicy(attempts=kwargs.pop("attempts", 1), backoff_seconds=0.05),
    )


@pytest.fixture
def hostile(request):
    gateway = BadGateway(request.param)
    yield gateway
    gateway.close()


@pytest.mark.parametrize(
    "hostile",
    [truncated_body, deeply_nested, bad_gzip],
    indirect=True,
    ids=["connection-drops-mid-body", "json-nested-100000-deep", "bad-content-encoding"],
)
def test_an_unusable_answer_after_the_charge_arrived_is_a_gateway_error(hostile):
    """A dropped connection, JSON nested too deep to parse and a body that does not decode are each a
    GatewayError, never another exception (ChunkedEncodingError, ContentDecodingError, RecursionError)."""
    try:
        client(hostile.url).charge("pay_x", 1000, "USD", CARD, idempotency_key="pay_x")
    except GatewayError:
        return
    except Exception as escaped:
        pytest.fail(f"{type(escaped).__module__}.{type(escaped).__name__} escaped the gateway client")
    pytest.fail("an unusable answer was believed")


@pytest.mark.parametrize("hostile", [truncated_body], indirect=True)
def test_connection_drop_mid_answer_is_a_502_with_payment_id_not_a_500(hostile):
    world = fake_world(client(hostile.url))
    handler = ApiHandler(Function.CHARGE, {"POST /payments": create_payment}, lambda: world.tenancy)
    body = {
        "amount": 1000,
        "currency": "usd",
        "source": {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "737"}},
    }
    event = api_event("POST", "/payments", body, headers={"Idempotency-Key": "drop-1"})
    first = handler(event, LambdaContext(25))
    assert hostile.requests, "the charge reached the gateway"
    assert first["statusCode"] in (502, 504), first
    assert json.loads(first["body"])["error"].get("payment_id"), first
    # and the key must be retryable at once (not held in flight for IN_FLIGHT_SECONDS)
    retry = handler(api_event("POST", "/payments", body, headers={"Idempotency-Key": "drop-1"}), LambdaContext(25))
    assert retry["statusCode"] != 409, retry


@pytest.mark.parametrize("hostile", [trickle(6.0)], indirect=True)
def test_a_trickling_answer_cannot_outlive_the_deadline(hostile):
    """The read timeout bounds each socket read, not the answer: a gateway sending a byte every 0.4 s is cut off at
    the request's deadline (here 2 s) all the same."""
    token = deadline._deadline.set(time.monotonic() + 2.0)
    try:
        started = time.monotonic()
        with pytest.raises(GatewayError):
            client(hostile.url, read=1.0).charge("pay_t", 1000, "USD", CARD, idempotency_key="pay_t")
        took = time.monotonic() - started
    except BaseException:
        took = time.monotonic() - started
        raise
    finally:
        deadline._deadline.reset(token)
    assert took < 2.5, f"the gateway call took {took:.1f} s against a 2 s deadline"
