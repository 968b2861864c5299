"""One merchant's backlog does not starve another merchant's reconciliation.

``Tenancy.reconcile`` (lambdas/service.py) walks the merchants within the function's remaining time. While
merchant A has more stuck items than one run gets through (items the gateway has no record of stay pending for
``GIVE_UP_AFTER``, an hour), merchant B's payment whose card was charged is still settled by the next runs, not
deferred on every run for that hour."""

import contextlib
import time
from datetime import timedelta

import lambdas.handlers.reconcile as reconcile_handler
from lambdas.domain.errors import GatewayFailed
from lambdas.domain.payments import Status
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.tokens import CardInput
from tests.support.fakes import fake_world
from tests.support.fakes_gateway import FakeGateway, Fault
from tools.api_events import LambdaContext

CARD = CardInput("4242424242424242", 12, 2030, "737")


class SlowLookups(FakeGateway):
    """A gateway that takes 0.3 s to look a charge up."""

    def find_charge(self, reference):
        time.sleep(0.3)
        return super().find_charge(reference)


def test_one_merchants_backlog_does_not_starve_another_merchant(monkeypatch):
    gateway = SlowLookups()
    world = fake_world(gateway)
    for n in range(6):  # merchant A: charges the gateway never processed (a 503), pending until given up
        gateway.fail_next("charge", Fault.UNAVAILABLE)
        with contextlib.suppress(GatewayFailed):
            world.service.create_payment(PaymentCommand(1000, "usd", card=CARD), "req", f"a{n}")
    merchant_b = world.other()
    gateway.fail_next("charge", Fault.LOST)  # merchant B: charged, the answer lost
    with contextlib.suppress(GatewayFailed):
        merchant_b.create_payment(PaymentCommand(2500, "usd", card=CARD), "req", "b0")
    (b_payment,) = [c.reference for c in gateway.charges() if c.amount == 2500]
    assert merchant_b.deps.store.get_payment(b_payment).status is Status.PENDING
    world.clock.advance(timedelta(minutes=2))
    monkeypatch.setattr(reconcile_handler, "tenancy", lambda: world.tenancy)
    runs = []
    for _ in range(4):  # four scheduled runs, each with 3.5 s left (1.5 s after the write reserve)
        runs.append(reconcile_handler.handler({}, LambdaContext(3.5)))
        world.clock.advance(timedelta(minutes=5))
    assert merchant_b.deps.store.get_payment(b_payment).status is Status.SUCCEEDED, (
        f"merchant B's charged payment is still pending after {len(runs)} runs: {runs}"
    )
