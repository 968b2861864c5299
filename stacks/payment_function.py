"""PaymentFunction: one Lambda function with its own role, log group and limits.

The role starts with only what every function needs (its own log stream, X-Ray
segments); everything else arrives through the ``grant_*`` methods of the
resources it uses, so the role holds exactly the actions its code calls.

With SnapStart, each deploy publishes a version, and callers invoke the alias
``LIVE_ALIAS`` that follows it (docs/adr/0008-snapstart.md)."""

from dataclasses import dataclass

from cdktf import TerraformAsset
from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lambda_alias import LambdaAlias
from cdktf_cdktf_provider_aws.lambda_function import (
    LambdaFunction,
    LambdaFunctionDeadLetterConfig,
    LambdaFunctionEnvironment,
    LambdaFunctionSnapStart,
    LambdaFunctionTracingConfig,
)
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from constructs import Construct

from stacks.config import FunctionSettings
from stacks.iam import Condition, PolicyDocument, Statement, service_principal, service_trust_policy
from stacks.payment_key import KEY_WRITE_ACTIONS, PaymentKey

LIVE_ALIAS = "live"  # the alias callers invoke when the function publishes versions (SnapStart)


@dataclass(frozen=True)
class PaymentFunctionProps:
    function_name: str
    role_name: str
    handler: str
    code: TerraformAsset
    settings: FunctionSettings
    account_id: str
    operations_key: PaymentKey  # encrypts the environment variables and the log group
    log_retention_days: int
    environment: dict[str, str]
    sqs_endpoint: str  # SQS's endpoint host in the stack's region and partition: the dead letters' kms:ViaService
    sqs_arn_prefix: str  # "arn:<partition>:sqs:<region>:<account>:"
    # An EventBridge schedule expression: the function then runs asynchronously, with a dead-letter queue.
    schedule: str | None = None
    # SnapStart: the function publishes a version on each change, snapshotted once initialized, behind LIVE_ALIAS.
    snap_start: bool = False


class PaymentFunction(Construct):
    def __init__(self, scope: Construct, id: str, props: PaymentFunctionProps) -> None:
        super().__init__(scope, id)
        self.grant_name = "".join(part.title() for part in id.split("-"))
        # Only Lambda in this account assumes it (a confused-deputy guard).
        trust = service_trust_policy(
            self, "assume-role", "lambda", (Condition("StringEquals", "aws:SourceAccount", (props.account_id,)),)
        )
        self.role = IamRole(self, "role", name=props.role_name, assume_role_policy=trust)
        self.policy = PolicyDocument(self, "policy")
        self.log_group = CloudwatchLogGroup(
            self,
            "logs",
            name=f"/aws/lambda/{props.function_name}",
            retention_in_days=props.log_retention_days,
            kms_key_id=props.operations_key.arn,
        )
        self.add_to_policy(
            Statement("WriteOwnLogs", ("logs:CreateLogStream", "logs:PutLogEvents"), (f"{self.log_group.arn}:*",))
        )
        # X-Ray's write actions support no resource-level permissions.
        self.add_to_policy(Statement("WriteTraces", ("xray:PutTelemetryRecords", "xray:PutTraceSegments"), ("*",)))
        role_policy = IamRolePolicy(
            self, "role-policy", name="least-privilege", role=self.role.id, policy=self.policy.json
        )

        settings = props.settings
        self.dead_letters = dead_letters = self._dead_letter_queue(props) if props.schedule else None
        self.function = LambdaFunction(
            self,
            "function",
            function_name=props.function_name,
            role=self.role.arn,
            handler=props.handler,
            runtime=settings.runtime,
            architectures=[settings.architecture],
            memory_size=settings.memory_mb,
            timeout=settings.timeout_seconds,
            reserved_concurrent_executions=settings.reserved_concurrency,
            filename=props.code.path,
            source_code_hash=props.code.asset_hash,
            environment=LambdaFunctionEnvironment(variables=props.environment),
            kms_key_arn=props.operations_key.arn,
            tracing_config=LambdaFunctionTracingConfig(mode="Active"),
            dead_letter_config=LambdaFunctionDeadLetterConfig(target_arn=dead_letters.arn) if dead_letters else None,
            publish=True if props.snap_start else None,
            snap_start=LambdaFunctionSnapStart(apply_on="PublishedVersions") if props.snap_start else None,
            depends_on=[self.log_group, role_policy],
        )
        self.alias = self._live_alias() if props.snap_start else None
        if props.schedule:
            self._run_on_schedule(props.function_name, props.schedule)

    def _live_alias(self) -> LambdaAlias:
        """The alias callers invoke, on the version the last deploy published."""
        return LambdaAlias(
            self,
            "alias",
            name=LIVE_ALIAS,
            function_name=self.function.function_name,
            function_version=self.function.version,
        )

    def _dead_letter_queue(self, props: PaymentFunctionProps) -> SqsQueue:
        """Where failed asynchronous invocations go instead of being lost, encrypted with the operations key."""
        queue_name = f"{props.function_name}-dead-letters"
        queue = SqsQueue(
            self,
            "dead-letters",
            name=queue_name,
            kms_master_key_id=props.operations_key.arn,
            message_retention_seconds=14 * 24 * 3600,
        )
        self.add_to_policy(Statement("SendDeadLetters", ("sqs:SendMessage",), (queue.arn,)))
        # Lambda sends as the function's role; SQS uses the key for it, naming the queue in the context.
        context = {"aws:sqs:arn": f"{props.sqs_arn_prefix}{queue_name}"}
        props.operations_key.grant_via(self, "DeadLetters", props.sqs_endpoint, KEY_WRITE_ACTIONS, context)
        return queue

    def _run_on_schedule(self, function_name: str, schedule: str) -> None:
        rule = CloudwatchEventRule(self, "schedule", name=f"{function_name}-schedule", schedule_expression=schedule)
        CloudwatchEventTarget(self, "schedule-target", rule=rule.name, arn=self.invoked_arn)
        LambdaPermission(
            self,
            "schedule-permission",
            statement_id="run-on-schedule",
            action="lambda:InvokeFunction",
            function_name=self.function.function_name,
            qualifier=self.qualifier,
            principal=service_principal(self, "events"),
            source_arn=rule.arn,
        )

    @property
    def role_arn(self) -> str:
        return self.role.arn

    @property
    def arn(self) -> str:
        return self.function.arn

    @property
    def invoked_arn(self) -> str:
        """What callers invoke: the alias, when there is one, else the function ($LATEST)."""
        return self.alias.arn if self.alias else self.function.arn

    @property
    def invoke_arn(self) -> str:
        """``invoked_arn`` as API Gateway's integration URI."""
        return self.alias.invoke_arn if self.alias else self.function.invoke_arn

    @property
    def qualifier(self) -> str | None:
        """The alias a permission to invoke names; None: the function itself."""
        return self.alias.name if self.alias else None

    @property
    def function_name(self) -> str:
        return self.function.function_name

    def add_to_policy(self, statement: Statement) -> None:
        self.policy.add(statement)
