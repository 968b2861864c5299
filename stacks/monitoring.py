"""Monitoring: the environment's alarms, sent to its alarm topic (stacks/alarm_topic.py); every administration call
on its KMS keys and its locked buckets, sent there through EventBridge; and a dashboard.

Each alarm's description names its section of docs/runbook.md (``ALARMS`` maps each kind to it); thresholds come
from the configuration (``stacks.config.AlarmSettings``). The service's own metrics (reconcile's backlog, answers by
outcome) are emitted by the functions as EMF in the environment's namespace (lambdas/metrics.py)."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.data_aws_kms_key import DataAwsKmsKey
from constructs import Construct

from lambdas import SERVICE_NAME
from lambdas.gateway_settings import REQUESTS as GATEWAY_REQUESTS
from lambdas.grants import GRANTS, Resource
from lambdas.metrics import (
    AUTHORIZATIONS_EXPIRED,
    CHECKPOINT_FAILURES,
    CHECKPOINTS_REFUSED,
    GATEWAY_LATENCY,
    GATEWAY_RESULTS,
    OUTCOMES,
    PENDING_OVERDUE,
    RECONCILE_ERRORS,
    RESPONSES,
    SERVICE_DIMENSION,
    SETTLEMENT_IMPORT_ERRORS,
    SETTLEMENT_MISMATCHES,
    SETTLEMENTS_DEFERRED,
    SETTLEMENTS_IMPORTED,
    WEBHOOK_DEAD_LETTERS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_FAILURES,
    WEBHOOK_OLDEST_UNDELIVERED,
)
from lambdas.routes import ROUTES, Function, Route
from stacks.alarm_topic import AlarmTopic, runbook, topic_key_alias
from stacks.config import AlarmSettings
from stacks.payment_function import PaymentFunction
from stacks.payment_key import PaymentKey

# Each kind of alarm, and what it says; its runbook section is ``RUNBOOK#<kind>``.
ALARMS = {
    "api-5xx-rate": "The API answers too many 5xx.",
    "route-latency": "A route's p99 latency is too high.",
    "function-errors": "A function crashed, timed out or ran out of memory.",
    "function-throttles": "A function was throttled: its reserved concurrency is used up.",
    "dead-letters": "A scheduled run failed: its event is in the dead-letter queue.",
    "pending-backlog": "Payments or refunds have been pending for more than 10 minutes.",
    "reconcile-failures": "A reconcile run could not settle items because of errors.",
    "waf-blocked-spike": "The web ACL blocks an unusual number of requests.",
    "ledger-integrity": "A checkpoint run found a ledger that does not extend its newest signed checkpoint: the ledger "
    "was tampered.",
    "checkpoint-failures": "A checkpoint run failed for a merchant, or has not run for 15 minutes: the ledger is not "
    "being signed.",
    "webhook-dead-letters": "Events were never delivered to a webhook endpoint after every retry: they are in the "
    "webhook dead-letter queue.",
    "webhook-failures": "Many webhook deliveries failed: endpoints answer errors, time out or cannot be reached.",
    "webhook-backlog": "An event has waited too long for delivery, or the delivery function has not run for 15 "
    "minutes.",
    "settlement-mismatches": "A settlement run found mismatches: a line that disagrees with the ledger, a line no "
    "merchant knows, or a movement no settlement listed within 3 days.",
    "settlement-import-errors": "A settlement run failed on a settlement or a merchant, or no settlement run has "
    "finished for 3 hours: settlements are not being imported.",
}


@dataclass(frozen=True)
class MonitoringProps:
    name: str  # the environment's prefix: alarm and dashboard names start with it
    settings: AlarmSettings
    topic: AlarmTopic
    functions: Mapping[Function, PaymentFunction]
    api_name: str
    stage_name: str
    routes: tuple[Route, ...]
    web_acl_name: str
    region: str
    metrics_namespace: str
    keys: tuple[PaymentKey, ...]  # every key of the stack but the topic's own, whose administration alarms
    account_alarms: str  # the name of the account's alarm topic: each reports the other's key lost
    buckets: tuple[str, ...] = ()  # the names of the stack's locked buckets, whose administration alarms
    webhook_dead_letters: str = ""  # the name of the queue of events never delivered (none: no alarm on it)


Widget = tuple[str, str, int, list[list[Any]]]  # title, statistic, period (s), metrics


class Monitoring(Construct):
    def __init__(self, scope: Construct, id: str, props: MonitoringProps) -> None:
        super().__init__(scope, id)
        self.props = props
        self.topic = props.topic
        self.alarms: list[CloudwatchMetricAlarm] = []
        self._key_administration_rules()
        self._add_alarms()
        self.dashboard = CloudwatchDashboard(
            self, "dashboard", dashboard_name=props.name, dashboard_body=json.dumps(self._dashboard_body())
        )

    # -- alarms --------------------------------------------------------------------------------------------------

    def _alarm(self, kind: str, id: str, subject: str, **metric: Any) -> None:
        settings = self.props.settings
        metric.setdefault("period", settings.period_seconds)
        metric.setdefault("treat_missing_data", "notBreaching")
        metric.setdefault("comparison_operator", "GreaterThanOrEqualToThreshold")
        self.alarms.append(
            CloudwatchMetricAlarm(
                self,
                id,
                alarm_name=f"{self.props.name}-{id}",
                alarm_description=f"{subject}: {ALARMS[kind]} {runbook(kind)}",
                evaluation_periods=1,
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
                **metric,
            )
        )

    def _add_alarms(self) -> None:
        props, settings = self.props, self.props.settings
        api = {"ApiName": props.api_name, "Stage": props.stage_name}
        self._alarm(
            "api-5xx-rate", "api-5xx-rate", props.api_name, namespace="AWS/ApiGateway", metric_name="5XXError",
            dimensions=api, statistic="Average", threshold=settings.api_5xx_rate,
            comparison_operator="GreaterThanThreshold",
        )  # fmt: skip
        for route in props.routes:
            words = "-".join(part.strip("{}") for part in route.path_parts)
            self._alarm(
                "route-latency", f"latency-{route.method.lower()}-{words}", f"{route.method} {route.path}",
                namespace="AWS/ApiGateway", metric_name="Latency", extended_statistic="p99",
                dimensions=api | {"Resource": route.path, "Method": route.method},
                threshold=settings.p99_latency_ms, comparison_operator="GreaterThanThreshold",
            )  # fmt: skip
        for function, construct in props.functions.items():
            name = {"FunctionName": construct.function_name}
            for kind, metric_name, threshold in (
                ("function-errors", "Errors", settings.function_errors),
                ("function-throttles", "Throttles", settings.function_throttles),
            ):
                self._alarm(
                    kind, f"{function.value}-{metric_name.lower()}", function.value, namespace="AWS/Lambda",
                    metric_name=metric_name, dimensions=name, statistic="Sum", threshold=threshold,
                )  # fmt: skip
            if construct.dead_letters is not None:
                self._alarm(
                    "dead-letters", f"{function.value}-dead-letters", construct.dead_letters.name,
                    namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
                    dimensions={"QueueName": construct.dead_letters.name}, statistic="Maximum", threshold=1,
                )  # fmt: skip
        self._scheduled_job_alarms()
        self._webhook_alarms()
        self._settlement_alarms()
        self._alarm(
            "waf-blocked-spike", "waf-blocked", props.web_acl_name, namespace="AWS/WAFV2",
            metric_name="BlockedRequests", statistic="Sum", threshold=settings.waf_blocked,
            dimensions={"WebACL": props.web_acl_name, "Rule": "ALL", "Region": props.region},
            comparison_operator="GreaterThanThreshold",
        )  # fmt: skip

    def _scheduled_job_alarms(self) -> None:
        """Reconciliation's and the checkpoint run's: each also fires when its job stops reporting."""
        props, settings = self.props, self.props.settings
        service = {SERVICE_DIMENSION: SERVICE_NAME}
        # reconcile emits the backlog every run (every 5 minutes): no datapoint for 15 minutes means it is not running
        self._alarm(
            "pending-backlog", "pending-backlog", "reconcile", namespace=props.metrics_namespace,
            metric_name=PENDING_OVERDUE, dimensions=service, statistic="Maximum",
            threshold=settings.pending_overdue, period=900, treat_missing_data="breaching",
        )  # fmt: skip
        self._alarm(
            "reconcile-failures", "reconcile-failures", "reconcile", namespace=props.metrics_namespace,
            metric_name=RECONCILE_ERRORS, dimensions=service, statistic="Sum", threshold=settings.reconcile_errors,
        )  # fmt: skip
        self._alarm(
            "ledger-integrity", "ledger-integrity", "checkpoint", namespace=props.metrics_namespace,
            metric_name=CHECKPOINTS_REFUSED, dimensions=service, statistic="Sum", threshold=1,
        )  # fmt: skip
        # a checkpoint run emits its failures every run (every 5 minutes): none for 15 minutes means it is not running
        self._alarm(
            "checkpoint-failures", "checkpoint-failures", "checkpoint", namespace=props.metrics_namespace,
            metric_name=CHECKPOINT_FAILURES, dimensions=service, statistic="Sum", threshold=1, period=900,
            treat_missing_data="breaching",
        )  # fmt: skip

    def _webhook_alarms(self) -> None:
        props, settings = self.props, self.props.settings
        service = {SERVICE_DIMENSION: SERVICE_NAME}
        if props.webhook_dead_letters:
            self._alarm(
                "webhook-dead-letters", "webhook-dead-letters", props.webhook_dead_letters, namespace="AWS/SQS",
                metric_name="ApproximateNumberOfMessagesVisible", dimensions={"QueueName": props.webhook_dead_letters},
                statistic="Maximum", threshold=1,
            )  # fmt: skip
        self._alarm(
            "webhook-dead-letters", "webhook-dead-lettered", "deliver", namespace=props.metrics_namespace,
            metric_name=WEBHOOK_DEAD_LETTERS, dimensions=service, statistic="Sum", threshold=1,
        )  # fmt: skip
        self._alarm(
            "webhook-failures", "webhook-failures", "deliver", namespace=props.metrics_namespace,
            metric_name=WEBHOOK_FAILURES, dimensions=service, statistic="Sum", threshold=settings.webhook_failures,
        )  # fmt: skip
        # a delivery run emits the age every run (every minute): none for 15 minutes means it is not running
        self._alarm(
            "webhook-backlog", "webhook-backlog", "deliver", namespace=props.metrics_namespace,
            metric_name=WEBHOOK_OLDEST_UNDELIVERED, dimensions=service, statistic="Maximum",
            threshold=settings.webhook_undelivered_seconds, period=900, treat_missing_data="breaching",
        )  # fmt: skip

    def _settlement_alarms(self) -> None:
        namespace, service = self.props.metrics_namespace, {SERVICE_DIMENSION: SERVICE_NAME}
        self._alarm(
            "settlement-mismatches", "settlement-mismatches", "settle", namespace=namespace,
            metric_name=SETTLEMENT_MISMATCHES, dimensions=service, statistic="Sum", threshold=1,
        )  # fmt: skip
        # a settlement run emits its errors every run (every hour): none for 3 hours means it is not running
        self._alarm(
            "settlement-import-errors", "settlement-import-errors", "settle", namespace=namespace,
            metric_name=SETTLEMENT_IMPORT_ERRORS, dimensions=service, statistic="Sum", threshold=1, period=10800,
            treat_missing_data="breaching",
        )  # fmt: skip

    def _key_administration_rules(self) -> None:
        """CloudTrail's records of every administration call on the stack's keys, whoever makes it, as EventBridge
        receives them, to the topic (stacks.alarm_topic.KEY_ADMINISTRATION). A topic cannot publish its own key's
        loss: this topic's goes to the account's alarm topic, and that topic's key's (found by its alias: the
        account stack is deployed first) comes here."""
        topic, account_alarms = self.topic, self.props.account_alarms
        topic.alert_on_key_administration([key.arn for key in self.props.keys])
        topic.report_key_loss_to(account_alarms)
        account_key = DataAwsKmsKey(self, "account-alarms-key", key_id=topic_key_alias(account_alarms))
        topic.alert_on_key_loss("account-alarms-key-loss", [account_key.arn])
        if self.props.buckets:
            topic.alert_on_bucket_administration(self.props.buckets)

    # -- dashboard -----------------------------------------------------------------------------------------------

    def _dashboard_body(self) -> dict[str, Any]:
        props = self.props
        api = ["ApiName", props.api_name, "Stage", props.stage_name]
        widgets = [
            *self._request_widgets(),
            *self._job_widgets(),
            ("API 5xx and 4xx", "Sum", 60, [["AWS/ApiGateway", metric, *api] for metric in ("5XXError", "4XXError")]),
            ("Throttles by function", "Sum", 60, [
                ["AWS/Lambda", "Throttles", "FunctionName", construct.function_name]
                for construct in props.functions.values()
            ]),
            ("WAF blocked requests", "Sum", 60, [
                ["AWS/WAFV2", "BlockedRequests", "WebACL", props.web_acl_name, "Rule", "ALL", "Region", props.region]
            ]),
        ]  # fmt: skip
        return {
            "widgets": [
                {
                    "type": "metric",
                    "x": (index % 2) * 12,
                    "y": (index // 2) * 6,
                    "width": 12,
                    "height": 6,
                    "properties": {
                        "title": title,
                        "region": props.region,
                        "stat": stat,
                        "period": period,
                        "view": "timeSeries",
                        "metrics": metrics,
                    },
                }
                for index, (title, stat, period, metrics) in enumerate(widgets)
            ]
        }

    def _request_widgets(self) -> list[Widget]:
        """Payments and refunds by outcome, and the gateway's answers."""
        namespace, service = self.props.metrics_namespace, [SERVICE_DIMENSION, SERVICE_NAME]

        def responses(route: str) -> list[list[Any]]:
            return [[namespace, RESPONSES, "route", route, "outcome", o, *service] for o in OUTCOMES]

        return [
            ("Payments per minute by outcome", "Sum", 60, responses("POST /payments")),
            ("Refunds per minute by outcome", "Sum", 60, responses("POST /payments/{id}/refunds")),
            ("Gateway: latency of its answers, by request (ms)", "p99", 300, [
                [namespace, GATEWAY_LATENCY, "request", request, "result", "answered", *service]
                for request in GATEWAY_REQUESTS
            ]),
            ("Gateway: attempts without a usable answer", "SampleCount", 60, [
                [namespace, GATEWAY_LATENCY, "request", request, "result", result, *service]
                for request in GATEWAY_REQUESTS for result in GATEWAY_RESULTS if result != "answered"
            ]),
            ("Gateway errors (502/504: payments, refunds, captures and cancels left pending)", "Sum", 60, [
                [namespace, RESPONSES, "route", f"{route.method} {route.path}", "outcome", "gateway_pending",
                 *service]
                for route in ROUTES if _asks_the_gateway(route.function)
            ]),
        ]  # fmt: skip

    def _job_widgets(self) -> list[Widget]:
        """The scheduled jobs': reconciliation, webhook delivery and the settlement import."""
        namespace, service = self.props.metrics_namespace, [SERVICE_DIMENSION, SERVICE_NAME]
        return [
            ("Pending backlog (older than 10 minutes) and reconcile errors", "Maximum", 300, [
                [namespace, PENDING_OVERDUE, *service],
                [namespace, RECONCILE_ERRORS, *service],
            ]),
            ("Authorisations expired uncaptured (cancelled by reconcile)", "Sum", 300, [
                [namespace, AUTHORIZATIONS_EXPIRED, *service],
            ]),
            ("Webhooks: deliveries, failures and events dead-lettered", "Sum", 60, [
                [namespace, metric, *service] for metric in (WEBHOOK_DELIVERIES, WEBHOOK_FAILURES, WEBHOOK_DEAD_LETTERS)
            ]),
            ("Webhooks: age of the oldest undelivered event (s)", "Maximum", 60, [
                [namespace, WEBHOOK_OLDEST_UNDELIVERED, *service],
            ]),
            ("Settlements: imported, left for the next run, mismatches and import errors", "Sum", 3600, [
                [namespace, metric, *service]
                for metric in (SETTLEMENTS_IMPORTED, SETTLEMENTS_DEFERRED, SETTLEMENT_MISMATCHES,
                               SETTLEMENT_IMPORT_ERRORS)
            ]),
        ]  # fmt: skip


def _asks_the_gateway(function: Function) -> bool:
    return any(grant.resource is Resource.GATEWAY_SECRET for grant in GRANTS[function])
