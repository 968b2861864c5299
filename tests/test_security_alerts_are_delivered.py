"""Security alerts reach the operator as AWS runs them (moto evaluates no policy and delivers no event, so these read
the synthesized policies and rules).

- EventBridge may use the alarm topic's key without ``aws:Source*`` conditions: the KMS request made for
  EventBridge carries neither key, and SNS documents them as unsupported for EventBridge-to-encrypted topics
  (Key management, "Enable compatibility between event sources from AWS services and encrypted topics"). The
  topic policy's ``aws:SourceArn`` on the rules keeps the confused deputy out. tests/test_monitoring.py pins the
  condition.
- The alarm topic has a key of its own, not one of the keys whose disabling or scheduled deletion it reports: SNS
  cannot publish with a disabled or pending-deletion key, so that alert, and every alarm after it, would be lost.
- Disabling the audit key, or scheduling its deletion, alerts (or its policy denies both): the Object-Locked audit
  logs are encrypted under it (docs/pci.md 10.3.2, 10.5.1: audit logs cannot be changed or deleted).
- StopLogging, DeleteTrail, UpdateTrail and PutEventSelectors on the audit trail alert (PCI DSS 10.7.2: failures
  of audit logging mechanisms are detected and alerted)."""

import json

from tests.support.policies import key_policy_statements

SOURCE_KEYS = {"aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid", "aws:sourceorgpaths"}


def _rules(stack) -> dict[str, dict]:
    return {
        name: {**rule, "pattern": json.loads(rule["event_pattern"])}
        for name, rule in stack.resources("aws_cloudwatch_event_rule").items()
        if "event_pattern" in rule
    }


def _topic_key(stack) -> str:
    (topic,) = stack.resources("aws_sns_topic").values()
    return topic["kms_master_key_id"]


def _key_name(reference: str) -> str:
    return reference.removeprefix("${aws_kms_key.").split(".")[0]


def test_eventbridge_may_use_the_alarm_topics_key_without_conditions_kms_never_receives(dev):
    key = _key_name(_topic_key(dev))
    uses = [
        s
        for s in key_policy_statements(dev, key)
        if s.effect == "Allow" and any(p.startswith("events.") for _, ids in s.principals for p in ids)
    ]
    assert uses, "EventBridge may not use the alarm topic's key at all"
    for use in uses:
        unsupported = {variable for _, variable, _ in use.conditions if variable.lower() in SOURCE_KEYS}
        assert not unsupported, (
            f"{key}: EventBridge's use of the topic key is conditioned on {sorted(unsupported)}, which SNS documents "
            "as unsupported for EventBridge-to-encrypted topics: the key-change rules never publish"
        )


def test_the_alarm_topic_is_not_encrypted_with_a_key_whose_disabling_it_reports(dev):
    topic_key = _topic_key(dev)
    (topic,) = dev.resources("aws_sns_topic")
    to_topic = {
        t["rule"].removeprefix("${aws_cloudwatch_event_rule.").removesuffix(".name}")
        for t in dev.resources("aws_cloudwatch_event_target").values()
        if t["arn"] == f"${{aws_sns_topic.{topic}.arn}}"
    }
    watched = {
        arn
        for name, rule in _rules(dev).items()
        if name in to_topic
        and {"DisableKey", "ScheduleKeyDeletion"} & set(rule["pattern"].get("detail", {}).get("eventName", []))
        for arn in rule["pattern"]["detail"].get("resources", {}).get("ARN", [])
    }
    assert watched, "no rule reports a key disabled or scheduled for deletion"
    assert topic_key not in watched, (
        f"the alarm topic is encrypted with {_key_name(topic_key)}, one of the keys whose DisableKey / "
        "ScheduleKeyDeletion it reports: once that key is disabled SNS cannot publish the alert (nor any alarm)"
    )


def _account(synthesized, dev):
    return synthesized[dev.environment.account_stack_id]


def test_disabling_or_deleting_the_audit_key_alerts(synthesized, dev):
    account = _account(synthesized, dev)
    (audit_key,) = [name for name in account.resources("aws_kms_key") if name.startswith("audit_key")]
    reference = f"${{aws_kms_key.{audit_key}.arn}}"
    denied = {action for s in key_policy_statements(account, audit_key) if s.effect == "Deny" for action in s.actions}
    if {"kms:ScheduleKeyDeletion", "kms:DisableKey"} <= denied:
        return  # no one can make the locked logs unreadable
    stacks = (account, dev)
    watching = [
        rule
        for stack in stacks
        for rule in _rules(stack).values()
        if {"DisableKey", "ScheduleKeyDeletion"} <= set(rule["pattern"].get("detail", {}).get("eventName", []))
        and reference in rule["pattern"]["detail"].get("resources", {}).get("ARN", [])
    ]
    assert watching, (
        "the audit key (whose loss makes every Object-Locked log unreadable) can be disabled or scheduled for "
        "deletion by an account administrator and no rule alerts: docs/pci.md 10.3.2 'cannot be changed or deleted'"
    )


def test_stopping_or_deleting_the_audit_trail_alerts(synthesized, dev):
    account = _account(synthesized, dev)
    tampering = {"StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"}
    matched: set[str] = set()
    for stack in (account, dev):
        for rule in _rules(stack).values():
            pattern = rule["pattern"]
            if "aws.cloudtrail" in pattern.get("source", []):
                matched |= set(pattern.get("detail", {}).get("eventName", []))
    assert tampering <= matched, (
        f"no EventBridge rule alerts on {sorted(tampering - matched)} of the audit trail: a stopped trail "
        "(PCI DSS 10.7.2, audit logging mechanism failing) goes unnoticed"
    )
