"""AlarmTopic: an SNS topic that alarms and EventBridge rules publish to, encrypted with a key of its own.

Its own key, because SNS cannot publish with a disabled key or one pending deletion: a topic encrypted with a key
whose disabling it reports would lose that alert, and every alarm after it. CloudWatch alarms of this account, and
this topic's own rules (``alert_on``: EventBridge rules named after the topic), may publish. SNS supports no
``aws:Source*`` condition in the key policy for EventBridge (SNS Developer Guide, "Key management"): the topic
policy binds the rules instead."""

import json
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


def runbook(kind: str) -> str:
    """The runbook section an alarm of ``kind`` names (its anchor is ``kind``)."""
    return f"Runbook: {RUNBOOK}#{kind}"


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


class AlarmTopic(Construct):
    def __init__(self, scope: Construct, id: str, props: AlarmTopicProps) -> None:
        super().__init__(scope, id)
        self.props = props
        cloudwatch, events = f"cloudwatch.{props.dns_suffix}", f"events.{props.dns_suffix}"
        rules = f"arn:{props.partition}:events:{props.region}:{props.account_id}:rule/{props.name}-*"
        self.key = PaymentKey(
            self,
            "key",
            PaymentKeyProps(
                alias=f"alias/{props.name}",
                description=f"The {props.name} topic",
                account_id=props.account_id,
                partition=props.partition,
                deletion_window_days=props.key_deletion_window_days,
                administrators=props.key_administrators,
                service_principals=(
                    ServicePrincipalUse(
                        cloudwatch,
                        PUBLISHER_KEY_ACTIONS,
                        (Condition("StringEquals", "aws:SourceAccount", (props.account_id,)),),
                    ),
                    ServicePrincipalUse(
                        events, PUBLISHER_KEY_ACTIONS, (), guarded_elsewhere=f"the topic policy: rules {rules}"
                    ),
                ),
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
                "CloudWatchAlarmsOfThisAccount", ("sns:Publish",), (self.topic.arn,),
                (Condition("StringEquals", "aws:SourceAccount", (props.account_id,)),),
                principals=(("Service", (cloudwatch,)),),
            ),
            Statement(
                "ThisTopicsRules", ("sns:Publish",), (self.topic.arn,),
                (Condition("ArnLike", "aws:SourceArn", (rules,)),),
                principals=(("Service", (events,)),),
            ),
        ]  # fmt: skip
        policy = {"Version": "2012-10-17", "Statement": [s.render_json() for s in statements]}
        SnsTopicPolicy(self, "policy", arn=self.topic.arn, policy=json.dumps(policy))

    @property
    def arn(self) -> str:
        return self.topic.arn

    def alert_on(self, id: str, kind: str, summary: str, pattern: dict[str, Any]) -> CloudwatchEventRule:
        """An EventBridge rule that sends the events matching ``pattern`` to the topic."""
        rule = CloudwatchEventRule(
            self,
            id,
            name=f"{self.props.name}-{id}",
            description=f"{summary} {runbook(kind)}",
            event_pattern=json.dumps(pattern),
        )
        CloudwatchEventTarget(self, f"{id}-target", rule=rule.name, arn=self.topic.arn)
        return rule


def api_calls(source: str, events: tuple[str, ...], detail: dict[str, Any]) -> dict[str, Any]:
    """The pattern of CloudTrail's records of ``source``'s API calls ``events`` (as EventBridge receives them)."""
    return {
        "source": [source],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventName": list(events), **detail},
    }
