"""AlarmTopic: an SNS topic that alarms and EventBridge rules publish to, encrypted with a key of its own.

Its own key, because SNS cannot publish with a disabled key or one pending deletion: a topic encrypted with a key
whose disabling it reports would lose that alert, and every alarm after it (``report_key_loss_to`` another topic).
This topic's own rules (``alert_on``: EventBridge rules named after the topic) may publish, and so may the stack's
own CloudWatch alarms (``alarm_names``), bound by ``aws:SourceArn`` on the topic and on its key; a topic without
alarms admits none. The SNS Developer Guide ("Enable compatibility between event sources from AWS services and
encrypted topics") has the key policy add ``aws:SourceAccount`` and ``aws:SourceArn`` for a service that publishes,
and says they are not supported there for EventBridge-to-encrypted topics: the topic policy binds the rules instead."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from stacks.config import AlarmSubscription
from stacks.iam import Condition, Statement
from stacks.payment_key import PaymentKey, PaymentKeyProps, ServicePrincipalUse

RUNBOOK = "docs/runbook.md"
PUBLISHER_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey*")  # what a publisher to an encrypted topic needs
# A key's administration, whoever calls it: each kind of alert (its runbook section), what it says, and the KMS calls
# it watches. SNS cannot publish with a key once it is lost (disabled or pending deletion).
KEY_ADMINISTRATION = {
    "key-loss": ("A KMS key was disabled or scheduled for deletion.", ("DisableKey", "ScheduleKeyDeletion")),
    "key-policy-change": ("A KMS key's policy was changed.", ("PutKeyPolicy",)),
    "key-grant": ("A grant was made on a KMS key.", ("CreateGrant",)),
}

# A locked bucket's administration, whoever calls it (CloudTrail's names of the S3 management events): its policy,
# Object Lock, lifecycle, replication, versioning, encryption, public access and ownership settings changed, or the
# bucket deleted. Not refused to the account (Terraform makes them on each deploy): alarmed.
BUCKET_ADMINISTRATION = {
    "bucket-change": (
        "A locked bucket's policy or settings were changed, or the bucket deleted.",
        (
            "PutBucketPolicy",
            "DeleteBucketPolicy",
            "PutObjectLockConfiguration",
            "PutBucketObjectLockConfiguration",
            "PutBucketReplication",
            "DeleteBucketReplication",
            "PutBucketLifecycle",
            "DeleteBucketLifecycle",
            "PutBucketVersioning",
            "PutBucketEncryption",
            "DeleteBucketEncryption",
            "PutBucketPublicAccessBlock",
            "DeleteBucketPublicAccessBlock",
            "PutBucketAcl",
            "PutBucketOwnershipControls",
            "DeleteBucketOwnershipControls",
            "DeleteBucket",
        ),
    ),
}


def runbook(kind: str) -> str:
    """The runbook section an alarm of ``kind`` names (its anchor is ``kind``)."""
    return f"Runbook: {RUNBOOK}#{kind}"


def topic_key_alias(topic_name: str) -> str:
    """The alias of the key of the alarm topic named ``topic_name``."""
    return f"alias/{topic_name}"


@dataclass(frozen=True)
class AlarmTopicProps:
    name: str  # the topic's; its key's alias and its rules' names start with it
    subscriptions: tuple[AlarmSubscription, ...]
    account_id: str
    partition: str
    region: str
    dns_suffix: str
    key_deletion_window_days: int = 30
    key_administrators: tuple[str, ...] = ()  # refused every use of the topic's key (PaymentKeyProps.administrators)
    alarm_names: str = ""  # the names of the CloudWatch alarms that publish, a pattern (e.g. "payments-dev-*")


class AlarmTopic(Construct):
    def __init__(self, scope: Construct, id: str, props: AlarmTopicProps) -> None:
        super().__init__(scope, id)
        self.props = props
        cloudwatch, events = f"cloudwatch.{props.dns_suffix}", f"events.{props.dns_suffix}"
        rules = f"arn:{props.partition}:events:{props.region}:{props.account_id}:rule/{props.name}-*"
        alarms = f"arn:{props.partition}:cloudwatch:{props.region}:{props.account_id}:alarm:{props.alarm_names}"
        # CloudWatch's source keys reach SNS and, through it, KMS (that SNS guide's section, step 3): only this stack's
        # alarms publish, bound on the topic and on its key.
        from_alarms = (
            Condition("StringEquals", "aws:SourceAccount", (props.account_id,)),
            Condition("ArnLike", "aws:SourceArn", (alarms,)),
        )
        publishers = [
            ServicePrincipalUse(events, PUBLISHER_KEY_ACTIONS, (), guarded_elsewhere=f"the topic policy: rules {rules}")
        ]
        if props.alarm_names:
            publishers.insert(0, ServicePrincipalUse(cloudwatch, PUBLISHER_KEY_ACTIONS, from_alarms))
        self.key = PaymentKey(
            self,
            "key",
            PaymentKeyProps(
                alias=topic_key_alias(props.name),
                description=f"The {props.name} topic",
                account_id=props.account_id,
                partition=props.partition,
                deletion_window_days=props.key_deletion_window_days,
                administrators=props.key_administrators,
                service_principals=tuple(publishers),
            ),
        )
        self.topic = SnsTopic(self, "topic", name=props.name, kms_master_key_id=self.key.arn)
        for index, subscription in enumerate(props.subscriptions):
            SnsTopicSubscription(
                self,
                f"subscription-{index}",
                topic_arn=self.topic.arn,
                protocol=subscription.protocol,
                endpoint=subscription.endpoint,
            )
        statements = [
            Statement(
                "ThisTopicsRules", ("sns:Publish",), (self.topic.arn,),
                (Condition("ArnLike", "aws:SourceArn", (rules,)),),
                principals=(("Service", (events,)),),
            ),
        ]  # fmt: skip
        if props.alarm_names:
            statements.insert(0, Statement("ThisStacksAlarms", ("sns:Publish",), (self.topic.arn,), from_alarms,
                                           principals=(("Service", (cloudwatch,)),)))  # fmt: skip
        policy = {"Version": "2012-10-17", "Statement": [s.render_json() for s in statements]}
        SnsTopicPolicy(self, "policy", arn=self.topic.arn, policy=json.dumps(policy))

    @property
    def arn(self) -> str:
        return self.topic.arn

    def alert_on(self, id: str, kind: str, summary: str, pattern: dict[str, Any]) -> CloudwatchEventRule:
        """An EventBridge rule that sends the events matching ``pattern`` to the topic."""
        return _rule_to_topic(self, id, self.props.name, self.topic.arn, kind, summary, pattern)

    def alert_on_key_administration(self, keys: Sequence[str]) -> None:
        """Every administration call on ``keys`` (their ARNs) and on the topic's own key, whoever makes it: a rule per
        kind. Not the topic's own key's loss, which it could not publish (``report_key_loss_to`` another topic)."""
        for kind, (summary, events) in KEY_ADMINISTRATION.items():
            watched = [*keys, *([] if kind == "key-loss" else [self.key.arn])]
            self.alert_on(kind, kind, summary, api_calls("aws.kms", events, {"resources": {"ARN": watched}}))

    def alert_on_bucket_administration(self, buckets: Sequence[str]) -> None:
        """Every call that changes the policy or settings of ``buckets`` (their names), or deletes one, whoever makes
        it: a rule per kind."""
        for kind, (summary, events) in BUCKET_ADMINISTRATION.items():
            self.alert_on(
                kind, kind, summary, api_calls("aws.s3", events, {"requestParameters": {"bucketName": list(buckets)}})
            )

    def alert_on_key_loss(self, id: str, keys: Sequence[str]) -> None:
        """``keys`` (their ARNs) disabled or scheduled for deletion: another alarm topic's, which it cannot publish."""
        summary, events = KEY_ADMINISTRATION["key-loss"]
        self.alert_on(id, "key-loss", summary, api_calls("aws.kms", events, {"resources": {"ARN": list(keys)}}))

    def report_key_loss_to(self, topic_name: str) -> None:
        """The topic's own key disabled or scheduled for deletion, sent to the alarm topic named ``topic_name`` in
        the same account and region, by a rule named after that topic (which admits only rules so named)."""
        props = self.props
        summary, events = KEY_ADMINISTRATION["key-loss"]
        pattern = api_calls("aws.kms", events, {"resources": {"ARN": [self.key.arn]}})
        arn = f"arn:{props.partition}:sns:{props.region}:{props.account_id}:{topic_name}"
        _rule_to_topic(self, f"{props.name}-key-loss", topic_name, arn, "key-loss", summary, pattern)


def _rule_to_topic(
    scope: Construct, id: str, topic_name: str, topic_arn: str, kind: str, summary: str, pattern: dict[str, Any]
) -> CloudwatchEventRule:
    """An EventBridge rule named after the topic ``topic_name`` (its policy admits only such rules) that sends it the
    events matching ``pattern``; its description names the runbook section of ``kind``."""
    rule = CloudwatchEventRule(
        scope,
        id,
        name=f"{topic_name}-{id}",
        description=f"{summary} {runbook(kind)}",
        event_pattern=json.dumps(pattern),
    )
    CloudwatchEventTarget(scope, f"{id}-target", rule=rule.name, arn=topic_arn)
    return rule


def api_calls(source: str, events: tuple[str, ...], detail: dict[str, Any]) -> dict[str, Any]:
    """The pattern of CloudTrail's records of ``source``'s API calls ``events`` (as EventBridge receives them)."""
    return {
        "source": [source],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventName": list(events), **detail},
    }
