"""The metrics the alarms and the dashboard read (lambdas/metrics.py), as the functions emit them: EMF lines on
stdout, in the environment's namespace."""

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from lambdas.domain.chains import Head
from lambdas.domain.errors import GatewayFailed
from lambdas.handlers import checkpoint as checkpoint_handler
from lambdas.handlers import reconcile as reconcile_handler
from lambdas.metrics import (
    AUTHORIZATIONS_EXPIRED,
    CHECKPOINT_FAILURES,
    CHECKPOINTS_REFUSED,
    NAMESPACE_VARIABLE,
    PENDING_OVERDUE,
    RECONCILE_ERRORS,
    RESPONSES,
    SETTLEMENT_IMPORT_ERRORS,
    SETTLEMENT_MISMATCHES,
    SETTLEMENTS_DEFERRED,
    SETTLEMENTS_IMPORTED,
    count_response,
    outcome_of,
    record_settlements,
)
from lambdas.use_cases.reconcile import OVERDUE_AFTER
from tests.support.chains import pay_on_chain, truncate_chain
from tests.support.fakes import FakeSigner, fake_world
from tests.support.fakes_gateway import FakeGateway, Fault
from tests.support.payments import captured, pay


def _emitted(capsys) -> list[dict]:
    """The EMF documents printed so far (one JSON object per line, with an ``_aws`` member)."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    return lines


@pytest.fixture
def namespace(monkeypatch) -> str:
    monkeypatch.setenv(NAMESPACE_VARIABLE, "PaymentLedger/test")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    return "PaymentLedger/test"


def _left_pending_11_and_5_minutes_ago(world, old: list[Callable[[], object]], recent: Callable[[], object]) -> None:
    """Each of ``old`` and ``recent`` leaves an item pending (the gateway refused it: a 502); by the end those of
    ``old`` are 11 minutes old, past OVERDUE_AFTER, and the recent one 5."""
    for leave_pending in (*old, recent):
        with pytest.raises(GatewayFailed):
            leave_pending()
        if leave_pending is old[-1]:
            world.clock.advance(OVERDUE_AFTER - timedelta(minutes=4))
    world.clock.advance(timedelta(minutes=5))


def _scheduled_reconcile(world, monkeypatch, capsys) -> dict[str, int]:
    """A run of the reconcile function on ``world``, as its schedule starts it, after what was printed so far."""
    monkeypatch.setattr(reconcile_handler, "tenancy", lambda: world.tenancy)
    capsys.readouterr()
    return reconcile_handler.handler({"source": "aws.events"}, None)


def test_reconcile_emits_the_backlog_of_items_pending_past_ten_minutes_and_its_errors(monkeypatch, capsys, namespace):
    gateway = FakeGateway()
    world = fake_world(gateway)

    def unpaid(key: str) -> Callable[[], object]:
        def pay_refused():
            gateway.fail_next("charge", Fault.UNAVAILABLE)
            return pay(world, key=key)

        return pay_refused

    _left_pending_11_and_5_minutes_ago(world, [unpaid("stuck"), unpaid("stuck-too")], unpaid("recent"))
    counts = _scheduled_reconcile(world, monkeypatch, capsys)
    assert (counts["still_pending"], counts["overdue"], counts["errors"]) == (3, 2, 0)
    (document,) = _emitted(capsys)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == namespace
    assert {m["Name"] for m in directive["Metrics"]} == {PENDING_OVERDUE, RECONCILE_ERRORS, AUTHORIZATIONS_EXPIRED}
    assert (document[PENDING_OVERDUE], document[RECONCILE_ERRORS], document[AUTHORIZATIONS_EXPIRED]) == (
        [2.0],
        [0.0],
        [0.0],
    )

    gateway.fail_next("find_charge", Fault.UNAVAILABLE, Fault.UNAVAILABLE, Fault.UNAVAILABLE)
    counts = reconcile_handler.handler({"source": "aws.events"}, None)
    assert (counts["errors"], counts["overdue"]) == (3, 2)  # an item that errored is still pending: overdue if old
    (document,) = _emitted(capsys)
    assert (document[PENDING_OVERDUE], document[RECONCILE_ERRORS]) == ([2.0], [3.0])


def test_reconcile_counts_a_refund_pending_past_ten_minutes_in_the_backlog(monkeypatch, capsys, namespace):
    gateway = FakeGateway()
    world = fake_world(gateway)
    payment_id = captured(world, 1000)  # succeeded: only its refunds can be pending

    def unrefunded(amount: int, key: str) -> Callable[[], object]:
        def refund_refused():
            gateway.fail_next("refund", Fault.UNAVAILABLE)
            return world.service.refund(payment_id, amount, key)

        return refund_refused

    _left_pending_11_and_5_minutes_ago(world, [unrefunded(400, "stuck")], unrefunded(300, "recent"))
    counts = _scheduled_reconcile(world, monkeypatch, capsys)
    assert (counts["still_pending"], counts["overdue"], counts["errors"]) == (2, 1, 0)
    (document,) = _emitted(capsys)
    assert (document[PENDING_OVERDUE], document[RECONCILE_ERRORS]) == ([1.0], [0.0])


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "succeeded"), (201, "succeeded"), (402, "declined"), (502, "gateway_pending"), (504, "gateway_pending"),
     (400, "refused"), (404, "refused"), (409, "refused"), (500, "failed"), (503, "failed")],
)  # fmt: skip
def test_every_answer_counts_once_by_route_template_and_outcome(capsys, namespace, status, outcome):
    assert outcome_of(status) == outcome
    count_response("POST /payments/{id}/refunds", status)
    (document,) = _emitted(capsys)
    assert document[RESPONSES] == [1.0]
    assert (document["route"], document["outcome"]) == ("POST /payments/{id}/refunds", outcome)
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace


def test_a_metric_that_cannot_be_written_never_fails_the_request(capsys, namespace, monkeypatch):
    from lambdas import metrics

    def broken(**_):
        raise ValueError("too many dimensions")

    monkeypatch.setattr(metrics, "single_metric", broken)
    count_response("POST /payments", 201)  # logged, not raised
    assert _emitted(capsys) == []


def test_a_checkpoint_run_that_refuses_a_tampered_ledger_emits_it(monkeypatch, capsys, namespace):
    world = fake_world(FakeGateway())
    pay(world)
    monkeypatch.setattr(checkpoint_handler, "tenancy", lambda: world.tenancy)
    checkpoint_handler.handler({"source": "aws.events"}, None)
    (document,) = _emitted(capsys)
    assert document[CHECKPOINTS_REFUSED] == [0.0]
    (chain,) = world.ledger.heads
    world.ledger.heads[chain] = Head(chain)  # a head rolled back, as only someone with table access could
    counts = checkpoint_handler.handler({"source": "aws.events"}, None)
    assert counts["refused"] == 1
    (document,) = _emitted(capsys)
    assert document[CHECKPOINTS_REFUSED] == [1.0]
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace


def test_a_checkpoint_run_that_fails_for_a_merchant_emits_it(monkeypatch, capsys, namespace):
    world = fake_world(FakeGateway())
    monkeypatch.setattr(checkpoint_handler, "tenancy", lambda: world.tenancy)
    checkpoint_handler.handler({"source": "aws.events"}, None)
    (document,) = _emitted(capsys)
    assert document[CHECKPOINT_FAILURES] == [0.0]

    def denied(signer, message):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "Sign")

    monkeypatch.setattr(FakeSigner, "sign", denied)  # the signing key's policy no longer lets the function sign
    pay(world)  # merchant A's ledger moved: it needs a signature; merchant B's did not
    counts = checkpoint_handler.handler({"source": "aws.events"}, None)
    assert (counts["errors"], counts["unchanged"]) == (1, 1)
    (document,) = _emitted(capsys)
    assert document[CHECKPOINT_FAILURES] == [1.0]
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace


def test_a_checkpoint_run_that_refuses_a_chain_truncated_and_grown_again_emits_it(monkeypatch, capsys, namespace):
    world = fake_world(FakeGateway())
    paid = pay(world).body["id"]
    monkeypatch.setattr(checkpoint_handler, "tenancy", lambda: world.tenancy)
    checkpoint_handler.handler({"source": "aws.events"}, None)
    capsys.readouterr()
    pay_on_chain(world, truncate_chain(world, paid))
    assert checkpoint_handler.handler({"source": "aws.events"}, None)["refused"] == 1
    (document,) = _emitted(capsys)
    assert document[CHECKPOINTS_REFUSED] == [1.0]


def test_a_settlement_run_emits_every_kind_of_mismatch_as_one_count_and_its_errors(capsys, namespace):
    """A merchant's mismatched line, a line no merchant knows, a movement never settled and one overdue with no
    settlement to be reported in yet each raise the one alarm; lines booked as matched raise nothing."""
    counts = {"settlements": 2, "matched": 40, "mismatched": 3, "unknown_references": 2, "not_settled": 1}
    record_settlements(counts | {"not_settled_waiting": 5, "deferred": 1, "errors": 4})
    (document,) = _emitted(capsys)
    assert document[SETTLEMENT_MISMATCHES] == [11.0]
    assert (document[SETTLEMENTS_IMPORTED], document[SETTLEMENTS_DEFERRED]) == ([2.0], [1.0])
    assert document[SETTLEMENT_IMPORT_ERRORS] == [4.0]
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace


def test_movements_waiting_for_a_settlement_to_be_reported_in_raise_the_alarm_every_run(capsys):
    """Breaks if a movement overdue in a currency the gateway has not settled since stayed silent until it did."""
    quiet = {"settlements": 0, "matched": 0, "mismatched": 0, "unknown_references": 0, "not_settled": 0}
    for _ in range(2):
        record_settlements(quiet | {"not_settled_waiting": 1, "deferred": 0, "errors": 0})
    assert [document[SETTLEMENT_MISMATCHES] for document in _emitted(capsys)] == [[1.0], [1.0]]
