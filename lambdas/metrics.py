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
AUTHORIZATIONS_EXPIRED = "AuthorizationsExpired"  # authorisations a reconcile run cancelled: not captured in time
CHECKPOINTS_REFUSED = "CheckpointsRefused"  # ledgers a checkpoint run would not sign: they do not extend (tampering)
CHECKPOINT_FAILURES = "CheckpointFailures"  # merchants a checkpoint run failed for (an error: KMS, the table, the copy)
# Each attempt at the Sparkle gateway, in ms, by request (method and path) and result: answered, retryable (409, 429,
# 5xx), refused (another 4xx, a redirect) or no_answer (refused connection, timeout, cut off).
GATEWAY_LATENCY = "GatewayLatency"
GATEWAY_RESULTS = ("answered", "retryable", "refused", "no_answer")
WEBHOOK_DELIVERIES = "WebhookDeliveries"  # webhook POSTs a receiver took (2xx), each delivery run
WEBHOOK_FAILURES = "WebhookFailures"  # webhook POSTs that failed (another status, a timeout, a refused address)
WEBHOOK_DEAD_LETTERS = "WebhookDeadLetters"  # events sent to the dead-letter queue: never delivered after every wait
WEBHOOK_ERRORS = "WebhookErrors"  # events a delivery run could not lease or record because of an error
# The age of the oldest event still undelivered among those a delivery run found due (seconds).
WEBHOOK_OLDEST_UNDELIVERED = "WebhookOldestUndeliveredAge"
# A settlement run's mismatches: merchants' lines that disagree with their ledger, lines whose reference no merchant
# knows, and movements no settlement listed in time.
SETTLEMENT_MISMATCHES = "SettlementMismatches"
SETTLEMENTS_IMPORTED = "SettlementsImported"  # gateway settlements a settlement run imported in full
SETTLEMENT_IMPORT_ERRORS = "SettlementImportErrors"  # settlements or merchants a settlement run failed on (an error)
SETTLEMENTS_DEFERRED = "SettlementsDeferred"  # settlements a settlement run left for the next (out of time)
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


def _emit(name: str, unit: MetricUnit, value: float, **dimensions: str) -> None:
    """One metric, with its dimensions, at once. What it measures is decided by now: a metric that cannot be
    written is logged, never turned into the request's failure."""
    try:
        with single_metric(name=name, unit=unit, value=value, namespace=_namespace()) as metric:
            for dimension, dimension_value in dimensions.items():
                metric.add_dimension(name=dimension, value=dimension_value)
    except Exception:
        logger.exception("metric not written", extra={"metric": name})


def count_response(route: str, status: int) -> None:
    """One answered request (its answer is decided and stored by now)."""
    _emit(RESPONSES, MetricUnit.Count, 1, route=route, outcome=outcome_of(status))


def time_gateway_attempt(request: str, result: str, seconds: float) -> None:
    """One attempt at the gateway: how long it took and how it ended."""
    _emit(GATEWAY_LATENCY, MetricUnit.Milliseconds, seconds * 1000, request=request, result=result)


def record_reconcile(counts: Mapping[str, int]) -> None:
    metrics = Metrics(namespace=_namespace())
    metrics.add_metric(name=PENDING_OVERDUE, unit=MetricUnit.Count, value=counts["overdue"])
    metrics.add_metric(name=RECONCILE_ERRORS, unit=MetricUnit.Count, value=counts["errors"])
    metrics.add_metric(name=AUTHORIZATIONS_EXPIRED, unit=MetricUnit.Count, value=counts["expired"])
    metrics.flush_metrics()


def record_checkpoints(counts: Mapping[str, int]) -> None:
    metrics = Metrics(namespace=_namespace())
    metrics.add_metric(name=CHECKPOINTS_REFUSED, unit=MetricUnit.Count, value=counts["refused"])
    metrics.add_metric(name=CHECKPOINT_FAILURES, unit=MetricUnit.Count, value=counts["errors"])
    metrics.flush_metrics()


def record_deliveries(counts: Mapping[str, float]) -> None:
    metrics = Metrics(namespace=_namespace())
    metrics.add_metric(name=WEBHOOK_DELIVERIES, unit=MetricUnit.Count, value=counts["delivered"])
    metrics.add_metric(name=WEBHOOK_FAILURES, unit=MetricUnit.Count, value=counts["failed"])
    metrics.add_metric(name=WEBHOOK_DEAD_LETTERS, unit=MetricUnit.Count, value=counts["dead_lettered"])
    metrics.add_metric(name=WEBHOOK_ERRORS, unit=MetricUnit.Count, value=counts["errors"])
    age = counts["oldest_undelivered_seconds"]
    metrics.add_metric(name=WEBHOOK_OLDEST_UNDELIVERED, unit=MetricUnit.Seconds, value=age)
    metrics.flush_metrics()


def record_settlements(counts: Mapping[str, int]) -> None:
    """A settlement run's counts (``lambdas.use_cases.settlements``): what the settlement alarms read. A movement
    overdue with no settlement of its currency to be reported in (``not_settled_waiting``) counts in every run until
    one comes: the alarm does not wait for the gateway's next settlement."""
    mismatches = counts["mismatched"] + counts["unknown_references"] + counts["not_settled"]
    mismatches += counts["not_settled_waiting"]
    metrics = Metrics(namespace=_namespace())
    metrics.add_metric(name=SETTLEMENT_MISMATCHES, unit=MetricUnit.Count, value=mismatches)
    metrics.add_metric(name=SETTLEMENTS_IMPORTED, unit=MetricUnit.Count, value=counts["settlements"])
    metrics.add_metric(name=SETTLEMENT_IMPORT_ERRORS, unit=MetricUnit.Count, value=counts["errors"])
    metrics.add_metric(name=SETTLEMENTS_DEFERRED, unit=MetricUnit.Count, value=counts["deferred"])
    metrics.flush_metrics()
