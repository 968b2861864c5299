"""Attack: reconciliation against a gateway that has gone quiet (promise 3: one item's trouble does not stop the
run, and it pages through everything pending; promise 5: nothing outlives the function's timeout)."""

import contextlib
import time
from dataclasses import replace
from datetime import timedelta

import lambdas.handlers.reconcile as reconcile_handler
from lambdas.adapters.sparkle import RetryPolicy, SparkleClient
from lambdas.domain.errors import GatewayFailed
from lambdas.domain.merchants import Merchant
from lambdas.service import Tenancy
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.tokens import CardInput
from tests.attack.badgateway import BadGateway
from tests.fakes import MERCHANT, MERCHANT_A, FakeMerchantDirectory, fake_world
from tests.fakes_gateway import FakeGateway, Fault
from tools.api_events import LambdaContext


def silent(conn, request) -> None:
    time.sleep(30)  # reads the request, never answers


def test_reconcile_stops_before_the_function_timeout(monkeypatch):
    """lambdas/handlers/reconcile.py:7 never calls deadline.start(context...): the gateway client's deadline is
    math.inf (deadline.py:123), so each pending item may take attempts x (connect + read) seconds and a run with
    a few items at a quiet gateway is killed by Lambda's timeout. The GSI returns the oldest items first, so the
    same stuck items are met first on every scheduled run and the ones after them are never reached."""
    fake = FakeGateway()
    world = fake_world(fake)
    for n in range(3):
        fake.fail_next("charge", Fault.UNAVAILABLE)
        with contextlib.suppress(GatewayFailed):
            world.service.create_payment(
                PaymentCommand(1000, "usd", card=CardInput("4242424242424242", 12, 2030, "737")), "req", f"k{n}"
            )
    world.clock.advance(timedelta(minutes=2))
    quiet = BadGateway(silent)
    try:
        sparkle = SparkleClient(
            quiet.url, lambda: "sk", connect_timeout=0.5, read_timeout=1.0, retry=RetryPolicy(attempts=1)
        )
        only_a = FakeMerchantDirectory({MERCHANT_A: Merchant(MERCHANT, world.deps.rules)})
        tenancy = Tenancy(only_a, lambda merchant: replace(world.deps, gateway=sparkle))
        monkeypatch.setattr(reconcile_handler, "tenancy", lambda: tenancy)
        started = time.monotonic()
        counts = reconcile_handler.handler({}, LambdaContext(1.5))
        took = time.monotonic() - started
    finally:
        quiet.close()
    assert took < 1.5, f"reconcile ran {took:.1f} s in a function with 1.5 s left ({counts})"
