"""What AWS services ask of the stacks' keys, buckets and topics as themselves, or for the stack's principals,
decided against the synthesized policies (tests/support/access_model.py builds each request from the service's
documentation). Each service is allowed what it does for this stack, and refused the same for another account or
another resource: the confused deputy."""

import pytest

from lambdas.routes import Function
from tests.conftest import SynthesizedStack
from tests.support.access_model import (
    ACCOUNT,
    PARTITION,
    References,
    StackModel,
    cloudtrail_delivery,
    function_environment,
    log_group_encryption,
    topic_publication,
)
from tests.support.iam_eval import Decision, Request, statements_from_json

OTHER_ACCOUNT = "210987654321"
KEY_ADMINISTRATOR = f"arn:aws:iam::{ACCOUNT}:role/key-administrator"  # dev's (stacks/config.py)
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/deployer"  # runs `cdktf deploy`: every permission IAM can give
OUTSIDER = f"arn:aws:iam::{OTHER_ACCOUNT}:role/deployer"
EVERYTHING = statements_from_json({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


class Stack:
    """A synthesized stack's policies as the access model reads them, and its references resolved."""

    def __init__(self, stack: SynthesizedStack) -> None:
        self.stack = stack
        self.refs = References(stack)
        self.model = StackModel.read(stack, self.refs).with_identity(DEPLOYER, EVERYTHING)
        self.model = self.model.with_identity(OUTSIDER, EVERYTHING).with_identity(KEY_ADMINISTRATOR, EVERYTHING)
        self.region = self.refs.region

    def arn(self, service: str, resource: str, account: str = ACCOUNT) -> str:
        return f"arn:{PARTITION}:{service}:{self.region}:{account}:{resource}"

    def not_refused(self, requests: list[Request]) -> list[str]:
        """Those of ``requests`` that IAM would allow."""
        return [f"{r.principal} {r.action} {r.resource}" for r in requests if self.model.decide(r) is Decision.ALLOWED]

    def not_allowed(self, requests: list[Request]) -> list[str]:
        """Those of ``requests`` that IAM would refuse, and how."""
        return [
            f"{r.principal} {r.action} {r.resource} -> {self.model.decide(r).value}"
            for r in requests
            if self.model.decide(r) is not Decision.ALLOWED
        ]

    def topic(self) -> tuple[str, str]:
        """The alarm topic's ARN and its key's."""
        ((name, topic),) = self.stack.resources("aws_sns_topic").items()
        return self.refs(f"${{aws_sns_topic.{name}.arn}}"), self.refs(topic["kms_master_key_id"])

    def rules_to(self, topic: str) -> list[str]:
        """The ARNs of the stack's EventBridge rules that publish to ``topic`` (an ARN)."""
        return [
            self.refs(target["rule"].replace(".name}", ".arn}"))
            for target in self.stack.resources("aws_cloudwatch_event_target").values()
            if self.refs(target["arn"]) == topic
        ]


@pytest.fixture(scope="module")
def dev(synthesized) -> Stack:
    return Stack(synthesized["dev"])


@pytest.fixture(scope="module")
def account(synthesized) -> Stack:
    return Stack(synthesized[synthesized["dev"].environment.account_stack_id])


# --- CloudTrail: the audit key and the bucket ----------------------------------------------------------------------


def _trail(account: Stack) -> tuple[str, str, str]:
    """The trail's ARN, its key's and its bucket's."""
    ((name, _),) = account.stack.resources("aws_cloudtrail").items()
    (bucket,) = [arn for arn in account.model.resource_policies if arn.startswith(f"arn:{PARTITION}:s3:::")]
    return account.refs(f"${{aws_cloudtrail.{name}.arn}}"), account.model.keys["audit"], bucket


def test_cloudtrail_delivers_the_trails_logs_under_its_key(account):
    trail, key, bucket = _trail(account)
    requests = cloudtrail_delivery(trail, key, bucket)
    assert {r.action for r in requests} == {
        "s3:GetBucketAcl", "s3:PutObject", "kms:GenerateDataKey", "kms:DescribeKey", "kms:Decrypt"}  # fmt: skip
    assert account.not_allowed(requests) == []


@pytest.mark.parametrize(
    "trail_name, owner",
    [("payments-audit-copy", ACCOUNT), ("payments-audit", OTHER_ACCOUNT), ("payments-audit-copy", OTHER_ACCOUNT)],
    ids=["another trail of the account", "the same trail name in another account", "another account's trail"],
)
def test_cloudtrail_acting_for_another_trail_is_refused_the_bucket_and_the_key(account, trail_name, owner):
    _, key, bucket = _trail(account)
    other = account.arn("cloudtrail", f"trail/{trail_name}", owner)
    assert account.not_refused(cloudtrail_delivery(other, key, bucket)) == []


def test_cloudtrail_writes_only_owner_controlled_files_under_the_accounts_prefix_over_tls(account):
    trail, key, bucket = _trail(account)
    put = next(r for r in cloudtrail_delivery(trail, key, bucket) if r.action == "s3:PutObject")
    assert account.model.decide(put) is Decision.ALLOWED
    other_acl = Request(put.principal, put.action, put.resource, {**put.context, "s3:x-amz-acl": "private"}, "Service")
    plain_http = Request(put.principal, put.action, put.resource, {**put.context, "aws:SecureTransport": "false"},
                         "Service")  # fmt: skip
    elsewhere = Request(put.principal, put.action, f"{bucket}/other/x.json.gz", put.context, "Service")
    assert account.model.decide(other_acl) is Decision.IMPLICIT_DENY
    assert account.model.decide(plain_http) is Decision.EXPLICIT_DENY
    assert account.model.decide(elsewhere) is Decision.IMPLICIT_DENY


# --- CloudWatch Logs: every encrypted log group -------------------------------------------------------------------


def _encrypted_log_groups(stack: Stack) -> dict[str, str]:
    """Each encrypted log group's ARN -> its key's."""
    return {
        stack.arn("logs", f"log-group:{stack.refs(group['name'])}"): stack.refs(group["kms_key_id"])
        for group in stack.stack.resources("aws_cloudwatch_log_group").values()
        if "kms_key_id" in group
    }


def test_cloudwatch_logs_uses_each_log_groups_key_for_that_group(dev):
    groups = _encrypted_log_groups(dev)
    names = {arn.split(":log-group:")[1] for arn in groups}
    prefix = dev.stack.environment.prefix
    assert {f"/aws/lambda/{prefix}-{f.value}" for f in Function} | {f"/aws/apigateway/{prefix}/access"} <= names
    assert any(name.startswith("API-Gateway-Execution-Logs_") for name in names)
    for group, key in groups.items():
        assert dev.not_allowed(log_group_encryption(group, key)) == [], group


def test_cloudwatch_logs_is_refused_the_key_for_another_accounts_group_or_another_group(dev):
    groups = _encrypted_log_groups(dev)
    for group, key in groups.items():
        name = group.split(":log-group:")[1]
        elsewhere = dev.arn("logs", f"log-group:{name}", OTHER_ACCOUNT)
        assert dev.not_refused(log_group_encryption(elsewhere, key)) == [], elsewhere
    key = next(iter(groups.values()))
    for name in ("/aws/lambda/someone-else", "API-Gateway-Execution-Logs_another1/v1", "aws-waf-logs-another"):
        assert dev.not_refused(log_group_encryption(dev.arn("logs", f"log-group:{name}"), key)) == [], name


# --- CloudWatch alarms and EventBridge: the encrypted alarm topics -------------------------------------------------


def test_the_stacks_alarms_publish_to_its_encrypted_topic(dev):
    topic, key = dev.topic()
    alarms = [a["alarm_name"] for a in dev.stack.resources("aws_cloudwatch_metric_alarm").values()]
    assert alarms
    for alarm in alarms:
        source = dev.arn("cloudwatch", f"alarm:{alarm}")
        assert dev.not_allowed(topic_publication("cloudwatch", source, topic, key)) == [], alarm


@pytest.mark.infra  # the stack fixture is chosen by name
@pytest.mark.parametrize("stack_name", ["dev", "account"])
def test_the_topics_rules_publish_to_its_encrypted_topic(request, stack_name):
    stack: Stack = request.getfixturevalue(stack_name)
    topic, key = stack.topic()
    rules = stack.rules_to(topic)
    assert rules
    for rule in rules:
        assert stack.not_allowed(topic_publication("events", rule, topic, key)) == [], rule


def test_the_environments_rule_for_its_topics_key_publishes_to_the_accounts_topic(dev, account):
    """The environment's topic cannot publish its own key's loss: a rule of the environment's stack sends it to the
    account's topic, whose policy admits it."""
    topic, key = account.topic()
    (rule,) = dev.rules_to(topic)
    assert account.not_allowed(topic_publication("events", rule, topic, key)) == []


@pytest.mark.infra  # the stack fixture is chosen by name
@pytest.mark.parametrize("stack_name", ["dev", "account"])
def test_alarms_and_rules_of_another_account_or_not_the_topics_own_are_refused_the_topic(request, stack_name):
    """The key lets EventBridge publish for any rule (SNS sends KMS no source for it): the topic refuses the rule."""
    stack: Stack = request.getfixturevalue(stack_name)
    topic, key = stack.topic()
    prefix = stack.stack.environment.prefix
    for alarm in (stack.arn("cloudwatch", f"alarm:{prefix}-api-5xx-rate", OTHER_ACCOUNT),
                  stack.arn("cloudwatch", "alarm:someone-elses-alarm")):  # fmt: skip
        assert stack.not_refused(topic_publication("cloudwatch", alarm, topic, key)) == [], alarm
    own = stack.rules_to(topic)[0]
    for rule in (own.replace(f":{ACCOUNT}:", f":{OTHER_ACCOUNT}:"), stack.arn("events", f"rule/{prefix}-schedule")):
        publish = topic_publication("events", rule, topic, key)[0]
        assert publish.action == "sns:Publish"
        assert stack.model.decide(publish) is Decision.IMPLICIT_DENY, rule


# --- Lambda: the functions' encrypted environments ------------------------------------------------------------------


def test_lambda_encrypts_each_functions_environment_for_its_deployer_and_no_one_else(dev):
    key = dev.model.keys["operations"]
    for function in dev.model.functions.values():
        assert dev.not_allowed(function_environment(DEPLOYER, function.arn, key)) == [], function.name
        assert dev.not_refused(function_environment(OUTSIDER, function.arn, key)) == [], function.name
        for request in function_environment(KEY_ADMINISTRATOR, function.arn, key):
            assert dev.model.decide(request) is Decision.EXPLICIT_DENY, request.action


# --- DynamoDB, Secrets Manager and SQS: keys used for their callers -------------------------------------------------


def _uses_through_services(dev: Stack, table: str, secret: str, queue: str) -> list[Request]:
    """Each service's use of its resource's key for the role that calls it, for the resources named."""
    model = dev.model
    vault, operations = model.keys["vault"], model.keys["operations"]
    charge, reconcile = model.functions[Function.CHARGE].role_arn, model.functions[Function.RECONCILE].role_arn
    table_context = {"aws:dynamodb:tableName": table, "aws:dynamodb:subscriberId": ACCOUNT}
    secret_context = {"SecretARN": secret, "SecretVersionId": "v1"}
    return [
        *model.through("dynamodb", vault, charge, ("kms:Decrypt", "kms:GenerateDataKey"), table_context),
        *model.through("secretsmanager", vault, charge, ("kms:Decrypt",), secret_context),
        *model.through("sqs", operations, reconcile, ("kms:GenerateDataKey", "kms:Decrypt"), {"aws:sqs:arn": queue}),
    ]


def test_dynamodb_secrets_manager_and_sqs_use_their_keys_for_the_stacks_own_resources(dev):
    table = next(name for name in dev.model.resource_keys if name.endswith("-ledger"))
    secret = next(arn for arn in dev.model.resource_keys if ":secretsmanager:" in arn)
    queue = dev.model.functions[Function.RECONCILE].dead_letter_arn
    assert queue is not None
    uses = _uses_through_services(dev, table, secret, queue)
    assert {r.context["kms:ViaService"].split(".")[0] for r in uses} == {"dynamodb", "secretsmanager", "sqs"}
    assert dev.not_allowed(uses) == []


def test_dynamodb_secrets_manager_and_sqs_are_refused_the_keys_for_another_resource(dev):
    others = (
        f"{dev.stack.environment.prefix}-ledger-copy",
        dev.arn("secretsmanager", "secret:another-secret-AbCdEf"),
        dev.arn("sqs", "another-queue"),
    )
    assert dev.not_refused(_uses_through_services(dev, *others)) == []


def test_dynamodb_and_secrets_manager_are_refused_the_vault_key_for_another_accounts_callers(dev):
    """The key lets the account's principals use it through its services (kms:CallerAccount): not another's."""
    table = next(name for name in dev.model.resource_keys if name.endswith("-ledger"))
    secret = next(arn for arn in dev.model.resource_keys if ":secretsmanager:" in arn)
    vault = dev.model.keys["vault"]
    context = {"aws:dynamodb:tableName": table, "aws:dynamodb:subscriberId": ACCOUNT}
    for caller, decision in ((DEPLOYER, Decision.ALLOWED), (OUTSIDER, Decision.IMPLICIT_DENY)):
        uses = dev.model.through("dynamodb", vault, caller, ("kms:Decrypt",), context)
        uses += dev.model.through("secretsmanager", vault, caller, ("kms:Decrypt",), {"SecretARN": secret})
        assert [dev.model.decide(r) for r in uses] == [decision, decision], caller


# --- the checkpoint archive: S3 and its key, for the checkpoint function alone ----------------------------------


def _archive(dev: Stack) -> tuple[str, str]:
    """The checkpoint archive bucket's ARN and its key's (the stack's one encrypted bucket)."""
    ((_, encryption),) = dev.stack.resources("aws_s3_bucket_server_side_encryption_configuration").items()
    (rule,) = encryption["rule"]
    key = dev.refs(rule["apply_server_side_encryption_by_default"]["kms_master_key_id"])
    return dev.refs(encryption["bucket"].replace(".id}", ".arn}")), key


def _keep(dev: Stack, caller: str, bucket: str, key: str, **context: str) -> list[Request]:
    """``caller`` putting a checkpoint as a new object over TLS, and S3 using the bucket's key for it: with an S3
    Bucket Key, under the bucket's ARN as encryption context."""
    put_context = {"aws:SecureTransport": "true", "s3:if-none-match": "*"} | context
    put = Request(caller, "s3:PutObject", f"{bucket}/acme/00000000000000000001.json", put_context)
    return [put, *dev.model.through("s3", key, caller, ("kms:GenerateDataKey", "kms:Decrypt"), {"aws:s3:arn": bucket})]


def test_the_checkpoint_function_keeps_checkpoints_in_the_archive_through_s3(dev):
    bucket, key = _archive(dev)
    checkpoint = dev.model.functions[Function.CHECKPOINT].role_arn
    assert dev.not_allowed(_keep(dev, checkpoint, bucket, key)) == []


def test_no_one_else_writes_the_archive_and_s3_uses_its_key_for_no_other_bucket_or_account(dev):
    bucket, key = _archive(dev)
    checkpoint = dev.model.functions[Function.CHECKPOINT].role_arn
    others = [f.role_arn for f in dev.model.functions.values() if f.role_arn != checkpoint]
    for caller in (*others, DEPLOYER, OUTSIDER):
        put = _keep(dev, caller, bucket, key)[0]
        assert dev.model.decide(put) is not Decision.ALLOWED, caller
    assert dev.model.decide(_keep(dev, DEPLOYER, bucket, key)[0]) is Decision.EXPLICIT_DENY
    plain_http = _keep(dev, checkpoint, bucket, key, **{"aws:SecureTransport": "false"})[0]
    assert dev.model.decide(plain_http) is Decision.EXPLICIT_DENY
    another_bucket = f"arn:{PARTITION}:s3:::{dev.stack.environment.prefix}-checkpoints-copy"
    assert dev.not_refused(_keep(dev, checkpoint, another_bucket, key)[1:]) == []
    assert dev.not_refused(_keep(dev, OUTSIDER, bucket, key)[1:]) == []
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention"):
        remove = Request(DEPLOYER, action, f"{bucket}/acme/00000000000000000001.json", {"aws:SecureTransport": "true"})
        assert dev.model.decide(remove) is Decision.EXPLICIT_DENY, action


# Every S3 action that writes an object or changes one in place, but the checkpoint function's PutObject (IAM's
# actions for S3 objects): replication writes objects without the put's conditions; ACLs, tags and holds change them.
OTHER_OBJECT_WRITES = (
    "s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags", "s3:ObjectOwnerOverrideToBucketOwner",
    "s3:PutObjectAcl", "s3:PutObjectVersionAcl", "s3:PutObjectTagging", "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging", "s3:PutObjectRetention", "s3:PutObjectLegalHold",
    "s3:BypassGovernanceRetention", "s3:RestoreObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
)  # fmt: skip
# What Terraform applies to the bucket (stacks/checkpoint_archive.py): refused, a deploy could not keep it as stated;
# these changes alarm instead (tests/test_checkpoint_bucket.py).
TERRAFORMS_BUCKET_CALLS = (
    "s3:PutBucketPolicy", "s3:PutBucketObjectLockConfiguration", "s3:PutLifecycleConfiguration",
    "s3:PutBucketVersioning", "s3:PutEncryptionConfiguration", "s3:PutBucketPublicAccessBlock",
)  # fmt: skip


def test_no_one_writes_or_alters_an_archived_object_but_by_the_put_nor_replicates_the_bucket(dev):
    """An administrator allowed everything by IAM, the checkpoint function itself and the key administrator are
    refused, by the bucket's policy, every other write of an object and a replication configuration (which would let
    S3 replicate objects into the bucket, or copy them out)."""
    bucket, _ = _archive(dev)
    checkpoint = dev.model.functions[Function.CHECKPOINT].role_arn
    tls = {"aws:SecureTransport": "true"}
    for principal in (DEPLOYER, KEY_ADMINISTRATOR, checkpoint):
        for action in OTHER_OBJECT_WRITES:
            write = Request(principal, action, f"{bucket}/acme/00000000000000000001.json", tls)
            assert dev.model.decide(write) is Decision.EXPLICIT_DENY, (principal, action)
        replication = Request(principal, "s3:PutReplicationConfiguration", bucket, tls)
        assert dev.model.decide(replication) is Decision.EXPLICIT_DENY, principal
    for action in TERRAFORMS_BUCKET_CALLS:  # the bucket stays Terraform's to configure
        assert dev.model.decide(Request(DEPLOYER, action, bucket, tls)) is Decision.ALLOWED, action
