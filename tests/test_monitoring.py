"""Operable and auditable, read off the synthesized stacks: every alarm, to an encrypted topic, with its
runbook section; the dashboard; KMS key changes through EventBridge; the audit trail and its locked bucket; what
the WAF and access logs keep and leave out."""

import json
import re

import pytest

from lambdas import SERVICE_NAME
from lambdas.gateway_settings import REQUESTS as GATEWAY_REQUESTS
from lambdas.metrics import (
    CHECKPOINT_FAILURES,
    CHECKPOINTS_REFUSED,
    GATEWAY_LATENCY,
    OUTCOMES,
    PENDING_OVERDUE,
    RECONCILE_ERRORS,
    RESPONSES,
    SETTLEMENT_IMPORT_ERRORS,
    SETTLEMENT_MISMATCHES,
    SETTLEMENTS_DEFERRED,
    SETTLEMENTS_IMPORTED,
)
from lambdas.routes import ROUTES, Function
from stacks.config import RESOURCE_PREFIX, AlarmSettings
from tests.conftest import REPO, SCALE_ALARMS
from tests.support.policies import key_policy_statements

DEFAULTS = AlarmSettings()


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def _alarms(stack) -> dict[str, dict]:
    return {alarm["alarm_name"]: alarm for alarm in stack.resources("aws_cloudwatch_metric_alarm").values()}


def _topic_ref(stack) -> str:
    (name,) = stack.resources("aws_sns_topic")
    return f"${{aws_sns_topic.{name}.arn}}"


def test_every_alarm_names_a_runbook_section_that_exists_and_goes_to_the_topic(stack):
    from stacks.alarm_topic import BUCKET_ADMINISTRATION, KEY_ADMINISTRATION, RUNBOOK
    from stacks.monitoring import ALARMS

    anchors = _anchors((REPO / RUNBOOK).read_text())
    kinds = set()
    for name, alarm in _alarms(stack).items():
        (kind,) = re.findall(rf"Runbook: {RUNBOOK}#([\w-]+)$", alarm["alarm_description"])
        assert kind in anchors, f"{name}: {RUNBOOK} has no section #{kind}"
        kinds.add(kind)
        assert alarm["alarm_actions"] == alarm["ok_actions"] == [_topic_ref(stack)], name
    for rule in stack.resources("aws_cloudwatch_event_rule").values():
        for kind in re.findall(rf"Runbook: {RUNBOOK}#([\w-]+)$", rule.get("description", "")):
            assert kind in anchors, f"{rule['name']}: {RUNBOOK} has no section #{kind}"
            kinds.add(kind)
    assert kinds == set(ALARMS) | set(KEY_ADMINISTRATION) | set(BUCKET_ADMINISTRATION)  # each raised by something


def test_each_function_each_route_and_each_dead_letter_queue_has_its_alarms(stack):
    alarms = _alarms(stack)
    prefix = stack.environment.prefix
    for function in Function:
        for metric in ("Errors", "Throttles"):
            alarm = alarms[f"{prefix}-{function.value}-{metric.lower()}"]
            assert (alarm["namespace"], alarm["metric_name"], alarm["statistic"]) == ("AWS/Lambda", metric, "Sum")
            assert alarm["dimensions"]["FunctionName"].startswith("${aws_lambda_function.")
            assert alarm["threshold"] == 1 and alarm["comparison_operator"] == "GreaterThanOrEqualToThreshold"
    latency = [a for a in alarms.values() if a["metric_name"] == "Latency"]
    assert {(a["dimensions"]["Method"], a["dimensions"]["Resource"]) for a in latency} == {
        (r.method, r.path) for r in ROUTES
    }
    assert {a["extended_statistic"] for a in latency} == {"p99"}
    ((api_name, api),) = stack.resources("aws_api_gateway_rest_api").items()
    assert api["name"] == prefix
    assert {a["dimensions"]["ApiName"] for a in latency} == {f"${{aws_api_gateway_rest_api.{api_name}.name}}"} and {
        a["dimensions"]["Stage"] for a in latency
    } == {"v1"}
    queues = {f"${{aws_sqs_queue.{n}.name}}": q["name"] for n, q in stack.resources("aws_sqs_queue").items()}
    watched = {queues[a["dimensions"]["QueueName"]] for a in alarms.values() if a["namespace"] == "AWS/SQS"}
    scheduled = (Function.RECONCILE, Function.CHECKPOINT, Function.DELIVER, Function.SETTLE)
    assert watched == {f"{prefix}-{f.value}-dead-letters" for f in scheduled} | {f"{prefix}-webhook-dead-letters"}
    api_5xx = alarms[f"{prefix}-api-5xx-rate"]
    assert (api_5xx["metric_name"], api_5xx["statistic"]) == ("5XXError", "Average")  # the share of requests
    waf = alarms[f"{prefix}-waf-blocked"]
    ((acl_name, acl),) = stack.resources("aws_wafv2_web_acl").items()
    assert acl["name"] == prefix
    web_acl = f"${{aws_wafv2_web_acl.{acl_name}.name}}"
    assert waf["dimensions"] == {"WebACL": web_acl, "Rule": "ALL", "Region": stack.environment.region}


def test_the_backlog_and_reconcile_alarms_read_the_metrics_reconcile_emits(stack):
    alarms = _alarms(stack)
    prefix, namespace = stack.environment.prefix, stack.environment.metrics_namespace
    backlog, failures = alarms[f"{prefix}-pending-backlog"], alarms[f"{prefix}-reconcile-failures"]
    assert (backlog["namespace"], backlog["metric_name"]) == (namespace, PENDING_OVERDUE)
    assert (failures["namespace"], failures["metric_name"]) == (namespace, RECONCILE_ERRORS)
    assert backlog["dimensions"] == failures["dimensions"] == {"service": SERVICE_NAME}
    assert backlog["treat_missing_data"] == "breaching"  # reconcile not running is a backlog nobody sees
    for function in stack.resources("aws_lambda_function").values():  # where the functions put their metrics
        assert function["environment"]["variables"]["POWERTOOLS_METRICS_NAMESPACE"] == namespace


def test_the_checkpoint_alarms_read_the_metrics_a_checkpoint_run_emits(stack):
    alarms = _alarms(stack)
    prefix, namespace = stack.environment.prefix, stack.environment.metrics_namespace
    integrity, failures = alarms[f"{prefix}-ledger-integrity"], alarms[f"{prefix}-checkpoint-failures"]
    assert (integrity["namespace"], integrity["metric_name"]) == (namespace, CHECKPOINTS_REFUSED)
    assert (failures["namespace"], failures["metric_name"]) == (namespace, CHECKPOINT_FAILURES)
    assert integrity["dimensions"] == failures["dimensions"] == {"service": SERVICE_NAME}
    assert (failures["statistic"], failures["threshold"], failures["comparison_operator"]) == (
        "Sum",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert failures["treat_missing_data"] == "breaching"  # checkpointing stopped is a failure nobody sees
    assert "Runbook: docs/runbook.md#checkpoint-failures" in failures["alarm_description"]


def test_the_settlement_alarms_read_the_metrics_a_settlement_run_emits(stack):
    """Any mismatch alarms (a merchant's, the operator's unknown line, a movement never settled); so does any import
    error, and no run for 3 hours (the function runs every hour)."""
    alarms = _alarms(stack)
    prefix, namespace = stack.environment.prefix, stack.environment.metrics_namespace
    mismatches, errors = alarms[f"{prefix}-settlement-mismatches"], alarms[f"{prefix}-settlement-import-errors"]
    assert (mismatches["namespace"], mismatches["metric_name"]) == (namespace, SETTLEMENT_MISMATCHES)
    assert (errors["namespace"], errors["metric_name"]) == (namespace, SETTLEMENT_IMPORT_ERRORS)
    for alarm in (mismatches, errors):
        assert alarm["dimensions"] == {"service": SERVICE_NAME}
        assert (alarm["statistic"], alarm["threshold"], alarm["comparison_operator"]) == (
            "Sum",
            1,
            "GreaterThanOrEqualToThreshold",
        )
    assert mismatches["treat_missing_data"] == "notBreaching"  # a run with nothing to say emits 0
    assert (errors["period"], errors["treat_missing_data"]) == (3 * 3600, "breaching")  # three runs missed
    assert "Runbook: docs/runbook.md#settlement-mismatches" in mismatches["alarm_description"]
    assert "Runbook: docs/runbook.md#settlement-import-errors" in errors["alarm_description"]
    ((_, dashboard),) = stack.resources("aws_cloudwatch_dashboard").items()
    shown = {m[1] for w in json.loads(dashboard["dashboard_body"])["widgets"] for m in w["properties"]["metrics"]}
    assert {SETTLEMENTS_IMPORTED, SETTLEMENTS_DEFERRED, SETTLEMENT_MISMATCHES, SETTLEMENT_IMPORT_ERRORS} <= shown


def test_thresholds_and_subscriptions_come_from_the_configuration(synthesized):
    dev, scale = synthesized["dev"], synthesized["scale"]
    assert {a["threshold"] for a in _alarms(dev).values() if a["metric_name"] == "Latency"} == {DEFAULTS.p99_latency_ms}
    assert _alarms(dev)["payments-dev-waf-blocked"]["threshold"] == DEFAULTS.waf_blocked
    assert dev.resources("aws_sns_topic_subscription") == {}
    scaled = _alarms(scale)
    assert {a["threshold"] for a in scaled.values() if a["metric_name"] == "Latency"} == {
        SCALE_ALARMS["p99_latency_ms"]
    }
    assert scaled["payments-scale-waf-blocked"]["threshold"] == SCALE_ALARMS["waf_blocked"]
    subscriptions = scale.resources("aws_sns_topic_subscription").values()
    assert sorted((s["protocol"], s["endpoint"]) for s in subscriptions) == sorted(
        (s["protocol"], s["endpoint"]) for s in SCALE_ALARMS["subscriptions"]
    )
    assert {s["topic_arn"] for s in subscriptions} == {_topic_ref(scale)}


@pytest.mark.parametrize(
    "settings",
    [{"api_5xx_rate": 0}, {"api_5xx_rate": 1.5}, {"p99_latency_ms": 30_000}, {"period_seconds": 120},
     {"subscriptions": [{"protocol": "sms", "endpoint": "+15550100"}]}, {"waf_blocked": 0}],
)  # fmt: skip
def test_alarm_settings_that_could_never_fire_or_deliver_are_refused(settings):
    with pytest.raises(ValueError):
        AlarmSettings.model_validate(settings)


def _rules_to(stack, topic: str) -> dict[str, dict]:
    """The event patterns of the stack's EventBridge rules that send to ``topic`` (a reference), by rule name."""
    rules = {
        f"${{aws_cloudwatch_event_rule.{n}.name}}": r for n, r in stack.resources("aws_cloudwatch_event_rule").items()
    }
    return {
        rules[t["rule"]]["name"]: json.loads(rules[t["rule"]]["event_pattern"])
        for t in stack.resources("aws_cloudwatch_event_target").values()
        if t["arn"] == topic
    }


def _topic_publishers(stack, topic_name: str, alarms: bool) -> str:
    """The topic is encrypted with a key of its own; only the topic's own rules and, if ``alarms``, the stack's own
    alarms publish, and its key lets them: CloudWatch under aws:SourceAccount and aws:SourceArn, EventBridge
    unconditioned (SNS supports no aws:Source* condition on the key for EventBridge), bound by the topic policy
    instead. Returns the key's resource name."""
    (topic,) = stack.resources("aws_sns_topic").values()
    assert topic["name"] == topic_name
    keys = {f"${{aws_kms_key.{n}.arn}}": n for n in stack.resources("aws_kms_key")}
    key = keys[topic["kms_master_key_id"]]
    rule_names = set(_rules_to(stack, _topic_ref(stack)))
    assert rule_names and all(name.startswith(f"{topic_name}-") for name in rule_names)
    ((_, policy),) = stack.resources("aws_sns_topic_policy").items()
    statements = {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}
    assert set(statements) == {"ThisTopicsRules", *(["ThisStacksAlarms"] if alarms else [])}
    account = "${data.aws_caller_identity.caller.account_id}"
    (rule_arns,) = statements["ThisTopicsRules"]["Condition"]["ArnLike"]["aws:SourceArn"]
    assert rule_arns.endswith(f":{account}:rule/{topic_name}-*")
    uses = {
        s.principals[0][1][0].split(".")[0]: s
        for s in key_policy_statements(stack, key)
        if s.principals[0][0] == "Service"
    }
    assert set(uses) == {"events", *(["cloudwatch"] if alarms else [])}
    assert all(set(use.actions) == {"kms:Decrypt", "kms:GenerateDataKey*"} for use in uses.values())
    assert uses["events"].conditions == ()
    if alarms:
        from_alarms = statements["ThisStacksAlarms"]
        assert from_alarms["Action"] == ["sns:Publish"]
        (alarm_arns,) = from_alarms["Condition"]["ArnLike"]["aws:SourceArn"]
        assert alarm_arns.endswith(f":{account}:alarm:{stack.environment.prefix}-*")
        assert from_alarms["Condition"]["StringEquals"] == {"aws:SourceAccount": [account]}
        assert uses["cloudwatch"].conditions == (
            ("StringEquals", "aws:SourceAccount", (account,)),
            ("ArnLike", "aws:SourceArn", (alarm_arns,)),
        )
    return key


def test_the_topic_has_its_own_key_and_only_this_stacks_alarms_and_its_rules_publish(stack):
    key = _topic_publishers(stack, f"{stack.environment.prefix}-alarms", alarms=True)
    lost = _administration(_rules_to(stack, _topic_ref(stack)))["DisableKey"]
    assert lost and f"${{aws_kms_key.{key}.arn}}" not in lost  # a key cannot report its own loss through its topic


def _administration(patterns: dict[str, dict]) -> dict[str, set[str]]:
    """Each KMS call the rules watch -> the keys (references) it is watched on."""
    watched: dict[str, set[str]] = {}
    for pattern in patterns.values():
        if pattern["source"] == ["aws.kms"]:
            assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
            assert "eventSource" not in pattern["detail"]  # its host differs by partition; the source names KMS
            assert set(pattern["detail"]) == {"eventName", "resources"}  # whoever calls: no userIdentity filter
            for event in pattern["detail"]["eventName"]:
                watched.setdefault(event, set()).update(pattern["detail"]["resources"]["ARN"])
    return watched


def test_every_administration_call_on_every_key_alarms_whoever_makes_it(synthesized, stack):
    """PutKeyPolicy, CreateGrant, DisableKey and ScheduleKeyDeletion on every key of the stack, the alarm topic's
    own included: its loss through the account's topic, and the account topic's key's loss through this one."""
    from stacks.account_stack import alarm_topic_name
    from stacks.alarm_topic import KEY_ADMINISTRATION

    account_topic = alarm_topic_name(RESOURCE_PREFIX)
    ((_, account_topic_body),) = synthesized[stack.environment.account_stack_id].resources("aws_sns_topic").items()
    assert account_topic_body["name"] == account_topic
    keys = {f"${{aws_kms_key.{name}.arn}}" for name in stack.resources("aws_kms_key")}
    ((_, topic),) = stack.resources("aws_sns_topic").items()
    own = topic["kms_master_key_id"]
    watched = _administration(_rules_to(stack, _topic_ref(stack)))
    assert set(watched) == {event for _, events in KEY_ADMINISTRATION.values() for event in events}
    assert watched["PutKeyPolicy"] == watched["CreateGrant"] == keys
    ((name, data),) = stack.data("aws_kms_key").items()
    assert data["key_id"] == f"alias/{account_topic}"  # the account's alarm topic's key
    lost = keys - {own} | {f"${{data.aws_kms_key.{name}.arn}}"}
    assert watched["DisableKey"] == watched["ScheduleKeyDeletion"] == lost
    (account_arn,) = {t["arn"] for t in stack.resources("aws_cloudwatch_event_target").values()
                      if t["arn"].endswith(f":{account_topic}")}  # fmt: skip
    to_account = _rules_to(stack, account_arn)
    assert set(to_account) == {f"{account_topic}-{stack.environment.prefix}-alarms-key-loss"}
    assert _administration(to_account) == {"DisableKey": {own}, "ScheduleKeyDeletion": {own}}


def test_the_dashboard_shows_outcomes_gateway_backlog_refunds_errors_throttles_and_waf(stack):
    ((_, dashboard),) = stack.resources("aws_cloudwatch_dashboard").items()
    widgets = json.loads(dashboard["dashboard_body"])["widgets"]
    by_title = {w["properties"]["title"]: w["properties"]["metrics"] for w in widgets}
    namespace = stack.environment.metrics_namespace
    payments = by_title["Payments per minute by outcome"]
    assert [m[:6] for m in payments] == [
        [namespace, RESPONSES, "route", "POST /payments", "outcome", o] for o in OUTCOMES
    ]
    assert by_title["Refunds per minute by outcome"][0][3] == "POST /payments/{id}/refunds"
    assert {m[1] for m in by_title["Pending backlog (older than 10 minutes) and reconcile errors"]} == {
        PENDING_OVERDUE, RECONCILE_ERRORS}  # fmt: skip
    latency = by_title["Gateway: latency of its answers, by request (ms)"]
    assert [m[:6] for m in latency] == [
        [namespace, GATEWAY_LATENCY, "request", request, "result", "answered"] for request in GATEWAY_REQUESTS
    ]
    failed_attempts = {(m[3], m[5]) for m in by_title["Gateway: attempts without a usable answer"]}
    assert failed_attempts == {
        (r, result) for r in GATEWAY_REQUESTS for result in ("retryable", "refused", "no_answer")
    }
    assert all(m[1] == GATEWAY_LATENCY for m in by_title["Gateway: attempts without a usable answer"])
    assert {m[1] for m in by_title["API 5xx and 4xx"]} == {"5XXError", "4XXError"}
    assert len(by_title["Throttles by function"]) == len(Function)
    assert by_title["WAF blocked requests"][0][:2] == ["AWS/WAFV2", "BlockedRequests"]
    assert any("Gateway errors" in title for title in by_title)


def test_waf_logs_leave_out_credentials_and_idempotency_keys_and_access_logs_name_the_principal(stack):
    ((_, logging),) = stack.resources("aws_wafv2_web_acl_logging_configuration").items()
    redacted = {field["single_header"]["name"] for field in logging["redacted_fields"]}
    assert redacted == {"authorization", "x-amz-security-token", "idempotency-key"}
    ((_, stage),) = stack.resources("aws_api_gateway_stage").items()
    fields = json.loads(stage["access_log_settings"]["format"])
    assert fields["principal"] == "$context.identity.userArn" and fields["resourcePath"] == "$context.resourcePath"
    assert fields["caller"] == "$context.identity.caller" and fields["httpMethod"] == "$context.httpMethod"


# -- the audit trail, in the account stack --------------------------------------------------------------------


@pytest.fixture
def account(synthesized, stack):
    return synthesized[stack.environment.account_stack_id]


def test_one_trail_records_management_events_and_the_tables_data_events_with_validated_log_files(account):
    ((_, trail),) = account.resources("aws_cloudtrail").items()
    assert trail["enable_log_file_validation"] is True and trail["is_multi_region_trail"] is True
    assert trail["kms_key_id"].startswith("${aws_kms_key.audit_key_")
    selectors = {s["name"]: s["field_selector"] for s in trail["advanced_event_selector"]}
    management, data = selectors.values()
    assert management == [{"field": "eventCategory", "equals": ["Management"]}]  # GetSecretValue among them
    by_field = {f["field"]: f for f in data}
    assert by_field["eventCategory"]["equals"] == ["Data"]
    assert by_field["resources.type"]["equals"] == ["AWS::DynamoDB::Table"]
    (tables,) = by_field["resources.ARN"]["starts_with"]
    assert tables.endswith(":table/payments-")  # every environment's ledger, idempotency and merchants tables
    assert trail["s3_bucket_name"].startswith("${aws_s3_bucket.audit_logs_")


def test_the_trails_bucket_is_locked_versioned_encrypted_private_and_tls_only(account):
    from stacks.account_stack import AUDIT_RETENTION_DAYS

    ((_, bucket),) = account.resources("aws_s3_bucket").items()
    assert bucket["object_lock_enabled"] is True
    ((_, lock),) = account.resources("aws_s3_bucket_object_lock_configuration").items()
    assert lock["rule"]["default_retention"] == {"mode": "COMPLIANCE", "days": AUDIT_RETENTION_DAYS}
    assert AUDIT_RETENTION_DAYS >= 365  # PCI DSS 10.5.1
    ((_, versioning),) = account.resources("aws_s3_bucket_versioning").items()
    assert versioning["versioning_configuration"]["status"] == "Enabled"
    ((_, encryption),) = account.resources("aws_s3_bucket_server_side_encryption_configuration").items()
    (rule,) = encryption["rule"]
    by_default = rule["apply_server_side_encryption_by_default"]
    assert by_default["sse_algorithm"] == "aws:kms" and by_default["kms_master_key_id"].startswith(
        "${aws_kms_key.audit_key_"
    )
    ((_, public),) = account.resources("aws_s3_bucket_public_access_block").items()
    assert all(public[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                           "restrict_public_buckets"))  # fmt: skip
    ((_, policy),) = account.resources("aws_s3_bucket_policy").items()
    statements = {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}
    assert statements["OnlyOverTls"]["Effect"] == "Deny"
    assert statements["OnlyOverTls"]["Condition"] == {"Bool": {"aws:SecureTransport": ["false"]}}
    writes = statements["TrailWritesItsLogs"]
    assert writes["Principal"] == {"Service": ["cloudtrail.${data.aws_partition.partition.dns_suffix}"]}
    assert set(writes["Condition"]["StringEquals"]) == {"aws:SourceArn", "s3:x-amz-acl"}


def test_the_trail_stopped_or_changed_and_its_keys_administration_alarm_through_the_accounts_own_topic(account):
    from stacks.account_stack import TRAIL_CHANGES, alarm_topic_name
    from stacks.alarm_topic import RUNBOOK

    _topic_publishers(account, alarm_topic_name(RESOURCE_PREFIX), alarms=False)
    rules = {r["name"]: json.loads(r["event_pattern"]) for r in account.resources("aws_cloudwatch_event_rule").values()}
    trail = rules["payments-account-alarms-audit-trail"]
    (trail_name,) = account.resources("aws_cloudtrail")
    assert trail["source"] == ["aws.cloudtrail"] and trail["detail"]["eventName"] == list(TRAIL_CHANGES)
    assert trail["detail"]["requestParameters"]["name"] == [
        f"${{aws_cloudtrail.{trail_name}.name}}", f"${{aws_cloudtrail.{trail_name}.arn}}"]  # fmt: skip
    keys = {f"${{aws_kms_key.{name}.arn}}": name.split("_")[0] for name in account.resources("aws_kms_key")}
    watched = _administration(_rules_to(account, _topic_ref(account)))
    assert {event: {keys[arn] for arn in arns} for event, arns in watched.items()} == {
        "PutKeyPolicy": {"audit", "alarms"},
        "CreateGrant": {"audit", "alarms"},
        "DisableKey": {"audit"},  # the topic's own: through each environment's topic
        "ScheduleKeyDeletion": {"audit"},
    }
    anchors = _anchors((REPO / RUNBOOK).read_text())
    for rule in account.resources("aws_cloudwatch_event_rule").values():
        (kind,) = re.findall(rf"Runbook: {RUNBOOK}#([\w-]+)$", rule["description"])
        assert kind in anchors


def test_every_environment_of_an_account_hears_its_audit_alarms(synthesized):
    scale = synthesized["scale"]
    account = synthesized[scale.environment.account_stack_id]
    subscriptions = account.resources("aws_sns_topic_subscription").values()
    assert sorted((s["protocol"], s["endpoint"]) for s in subscriptions) == sorted(
        (s["protocol"], s["endpoint"]) for s in SCALE_ALARMS["subscriptions"]
    )
