"""The service's CloudWatch metrics, as embedded metric format (EMF) lines on stdout, which Lambda ships to the
function's log group and CloudWatch turns into metrics (Powertools Metrics, already loaded with its logger). The
namespace is the environment's (POWERTOOLS_METRICS_NAMESPACE, set by the stack), the ``service`` dimension
POWERTOOLS_SERVICE_NAME. The alarms and the dashboard (stacks/monitoring.py) read the names from here. No value or
dimension comes from a request's content: a route is its template, never a path."""

import os
from collections.abc import Mapping

from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric

from lambdas.logs import logger

NAMESPACE_VARIABLE = "POWERTOOLS_METRICS_NAMESPACE"  # set by the stack: EnvironmentConfig.metrics_namespace

RESPONSES = "Responses"  # one per answered request, by route (template) and outcome
PENDING_OVERDUE = "PendingOverdue"  # payments and refunds still pending past reconcile.OVERDUE_AFTER, each run
RECONCILE_ERRORS = "ReconcileErrors"  # items a reconcile run could not settle because of an error
CHECKPOINTS_REFUSED = "CheckpointsRefused"  # ledgers a checkpoint run would not sign: a chain went back (tampering)
SERVICE_DIMENSION = "service"
OUTCOMES = ("succeeded", "declined", "gateway_pending", "refused", "failed")


def outcome_of(status: int) -> str:
    """What an answer's status says happened (one of ``OUTCOMES``)."""
    if status < 300:
        return "succeeded"
    if status == 402:
        return "declined"
    if status in (502, 504):
        return "gateway_pending"
    return "refused" if status < 500 else "failed"


def _namespace() -> str:
    return os.environ.get(NAMESPACE_VARIABLE) or "PaymentLedger"


def count_response(route: str, status: int) -> None:
    """One answered request. Its answer is decided and stored by now: a metric that cannot be written is logged,
    never turned into the request's failure."""
    try:
        with single_metric(name=RESPONSES, unit=MetricUnit.Count, value=1, namespace=_namespace()) as metric:
            metric.add_dimension(name="route", value=route)
            metric.add_dimension(name="outcome", value=outcome_of(status))
    except Exception:
        logger.exception("metric not written", extra={"metric": RESPONSES})


def record_reconcile(counts: Mapping[str, int]) -> None:
    metrics = Metrics(namespace=_namespace())
    metrics.add_metric(name=PENDING_OVERDUE, unit=MetricUnit.Count, value=counts["overdue"])
    metrics.add_metric(name=RECONCILE_ERRORS, unit=MetricUnit.Count, value=counts["errors"])
    metrics.flush_metrics()


def record_checkpoints(counts: Mapping[str, int]) -> None:
    metrics = Metrics(namespace=_namespace())
    metrics.add_metric(name=CHECKPOINTS_REFUSED, unit=MetricUnit.Count, value=counts["refused"])
    metrics.flush_metrics()
