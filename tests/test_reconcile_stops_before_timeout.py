"""Reconciliation against a gateway that has gone quiet ends before the function's timeout: one item's trouble does
not stop the run, and no gateway call outlives the deadline the handler starts from its context."""

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
from tests.support.bad_gateway import BadGateway
from tests.support.fakes import MERCHANT, MERCHANT_A, FakeMerchantDirectory, fake_world
from tests.support.fakes_gateway import FakeGateway, Fault
from tools.api_events import LambdaContext


def silent(conn, request) -> None:
    time.sleep(30)  # reads the request, never answers


def test_reconcile_stops_before_the_function_timeout(monkeypatch):
    """Each pending item could take attempts x (connect + read) seconds at a quiet gateway; the run holds them to
    the function's remaining time, else Lambda kills it, and since the oldest items come first, the same stuck items
    would be met on every scheduled run and the ones after them never reached."""
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
