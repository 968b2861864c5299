"""AccountStack: what an account holds once per region for every environment of the service.

API Gateway's CloudWatch role is one setting per account and region: if each environment's stack set it, the last
deploy would win and another API's logs would stop. It lives here, deployed once before the environments, with a
role that writes the logs of every environment's API. So does the audit trail (stacks/audit_trail.py): one trail
records every environment of the account."""

from dataclasses import dataclass

from cdktf import Aspects, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.api_gateway_account import ApiGatewayAccount
from cdktf_cdktf_provider_aws.data_aws_iam_policy_document import (
    DataAwsIamPolicyDocument,
    DataAwsIamPolicyDocumentStatement,
)
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from constructs import Construct

from stacks.alarm_topic import AlarmTopic, AlarmTopicProps, api_calls
from stacks.audit_trail import AuditTrail, AuditTrailProps
from stacks.aws_target import AwsTarget, AwsTargetProps
from stacks.config import DEFAULT_TAGS, AlarmSubscription
from stacks.iam import service_trust_policy
from stacks.tagging import TaggingAspect

AUDIT_RETENTION_DAYS = 365  # PCI DSS 10.5.1: audit logs kept at least a year (and locked that long)
# API calls that stop or narrow the trail (PCI DSS 10.7.2).
TRAIL_CHANGES = ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors", "PutInsightSelectors")


@dataclass(frozen=True)
class AccountStackProps:
    target: AwsTargetProps
    name_prefix: str  # of every environment's resource names (EnvironmentConfig.prefix)
    subscriptions: tuple[AlarmSubscription, ...] = ()  # who hears the audit trail's alarms: every environment's
    key_administrators: tuple[str, ...] = ()  # every environment's: refused every use of the account's keys


def alarm_topic_name(name_prefix: str) -> str:
    """The account's alarm topic: the audit trail's alarms, and every environment's alarm topic's key lost."""
    return f"{name_prefix}account-alarms"


def api_log_groups(name_prefix: str) -> tuple[str, ...]:
    """The log groups API Gateway writes for the service's APIs: access logs that PaymentApi names, and execution
    logs, which API Gateway names by API id."""
    return (f"/aws/apigateway/{name_prefix}*", "API-Gateway-Execution-Logs_*")


class AccountStack(TerraformStack):
    def __init__(self, scope: Construct, id: str, props: AccountStackProps) -> None:
        super().__init__(scope, id)
        target = AwsTarget(self, "target", props.target)
        groups = [target.arn("logs", f"log-group:{group}") for group in api_log_groups(props.name_prefix)]
        # IAM names are global: one role per region of the account.
        role = IamRole(
            self,
            "api-logging-role",
            name=f"{props.name_prefix}apigateway-logs-{props.target.region}",
            assume_role_policy=service_trust_policy(self, "api-logging-assume-role", "apigateway"),
        )
        policy = DataAwsIamPolicyDocument(
            self,
            "api-logging-policy",
            statement=[
                DataAwsIamPolicyDocumentStatement(
                    sid="WriteApiLogs",
                    actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                    resources=[f"{group}:*" for group in groups],
                ),
                DataAwsIamPolicyDocumentStatement(
                    sid="FindApiLogGroups", actions=["logs:DescribeLogGroups"], resources=groups
                ),
            ],
        )
        IamRolePolicy(self, "api-logging-role-policy", name="write-api-logs", role=role.id, policy=policy.json)
        ApiGatewayAccount(self, "api-gateway-account", cloudwatch_role_arn=role.arn)
        TerraformOutput(self, "api_logging_role", value=role.arn)
        trail = AuditTrail(
            self,
            "audit",
            target,
            AuditTrailProps(
                name=f"{props.name_prefix}audit",
                tables_prefix=props.name_prefix,
                retention_days=AUDIT_RETENTION_DAYS,
                key_administrators=props.key_administrators,
            ),
        )
        self._alert_on_audit_changes(target, props, trail)
        TerraformOutput(self, "audit_trail", value=trail.trail.arn)
        TerraformOutput(self, "audit_bucket", value=trail.bucket.id)
        Aspects.of(self).add(TaggingAspect(DEFAULT_TAGS))

    def _alert_on_audit_changes(self, target: AwsTarget, props: AccountStackProps, trail: AuditTrail) -> None:
        """The trail stopped or narrowed, and every administration call on its key: to the account's alarm topic. The
        topic has a key of its own, so the audit key's loss is still reported; each environment's stack reports the
        loss of the topic's key."""
        topic = AlarmTopic(
            self,
            "alarms",
            AlarmTopicProps(
                alarm_topic_name(props.name_prefix),
                props.subscriptions,
                target.account_id,
                target.partition,
                props.target.region,
                target.dns_suffix,
                key_administrators=props.key_administrators,
            ),
        )
        name = trail.trail.name
        topic.alert_on(
            "audit-trail",
            "audit-change",
            "The audit trail was stopped or changed.",
            api_calls("aws.cloudtrail", TRAIL_CHANGES, {"requestParameters": {"name": [name, trail.trail.arn]}}),
        )
        topic.alert_on_key_administration([trail.key.arn])
