"""The checkpoints' write-once bucket, read off the synthesized stacks: locked in compliance mode for the
environment's retention, versioned, encrypted with a key of its own, private, TLS only, and written only by the
checkpoint function, only as new names; its name is a stack output and the checkpoint function's alone."""

import json
import re

from lambdas.routes import Function
from tests.conftest import REPO
from tests.support.policies import key_policy_statements, role_arn


def _one(stack, resource_type: str) -> dict:
    found = [r for name, r in stack.resources(resource_type).items() if name.startswith("checkpoint-archive_")]
    assert len(found) == 1, f"{resource_type}: {len(found)}"
    return found[0]


def _bucket_name(stack) -> str:
    (name,) = [n for n in stack.resources("aws_s3_bucket") if n.startswith("checkpoint-archive_")]
    return name


def test_the_bucket_is_locked_for_the_retention_versioned_encrypted_with_its_own_key_and_private(stack):
    config = stack.environment
    bucket = _one(stack, "aws_s3_bucket")
    assert bucket["bucket"] == config.checkpoint_bucket and bucket["object_lock_enabled"] is True
    lock = _one(stack, "aws_s3_bucket_object_lock_configuration")
    assert lock["rule"]["default_retention"] == {"mode": "COMPLIANCE", "days": config.checkpoint_retention_days}
    assert _one(stack, "aws_s3_bucket_versioning")["versioning_configuration"]["status"] == "Enabled"
    (rule,) = _one(stack, "aws_s3_bucket_server_side_encryption_configuration")["rule"]
    by_default = rule["apply_server_side_encryption_by_default"]
    (key,) = [n for n in stack.resources("aws_kms_key") if n.startswith("checkpoint-archive_key")]
    assert by_default == {"sse_algorithm": "aws:kms", "kms_master_key_id": f"${{aws_kms_key.{key}.arn}}"}
    watching = ("aws_kms_alias", "aws_cloudwatch_event_rule")  # its alias, and the alarms on its administration
    users = [r for t, resources in stack.config["resource"].items() if t not in watching
             for r in resources.values() if f"aws_kms_key.{key}." in json.dumps(r)]  # fmt: skip
    assert len(users) == 1  # the bucket's encryption: no other resource uses its key
    public = _one(stack, "aws_s3_bucket_public_access_block")
    assert all(public[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                           "restrict_public_buckets"))  # fmt: skip


def test_prod_keeps_checkpoints_locked_ten_years(synthesized):
    assert synthesized["prod"].environment.checkpoint_retention_days >= 3653


def test_only_the_checkpoint_function_puts_checkpoints_only_as_new_names_and_nobody_deletes_them(stack):
    policy = json.loads(_one(stack, "aws_s3_bucket_policy")["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    bucket = f"arn:${{data.aws_partition.partition.partition}}:s3:::{stack.environment.checkpoint_bucket}"
    assert all(s["Effect"] == "Deny" and s["Principal"] == {"AWS": ["*"]} for s in statements.values())
    assert statements["OnlyOverTls"]["Condition"] == {"Bool": {"aws:SecureTransport": ["false"]}}
    assert statements["OnlyNewNames"]["Action"] == ["s3:PutObject"]
    assert statements["OnlyNewNames"]["Condition"] == {"Null": {"s3:if-none-match": ["true"]}}
    never = statements["NeverDeletedOrUnlocked"]
    assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention"} <= set(never["Action"])
    assert never["Resource"] == [bucket, f"{bucket}/*"] and "Condition" not in never
    writers = statements["OnlyTheCheckpointFunctionWrites"]
    role = role_arn(stack, stack.environment.function_name(Function.CHECKPOINT.value))
    assert writers["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [role]}}
    assert writers["Action"] == ["s3:PutObject"] and writers["Resource"] == [f"{bucket}/*"]


def test_the_bucket_key_is_used_for_the_checkpoint_role_only_through_s3_for_this_bucket(dev):
    (key,) = [n for n in dev.resources("aws_kms_key") if n.startswith("checkpoint-archive_key")]
    role = role_arn(dev, dev.environment.function_name(Function.CHECKPOINT.value))
    (granted,) = [s for s in key_policy_statements(dev, key) if s.principals == (("AWS", (role,)),)]
    assert set(granted.actions) == {"kms:Decrypt", "kms:GenerateDataKey"}
    conditions = {(c[0], c[1]): c[2] for c in granted.conditions}
    partition = "${data.aws_partition.partition"
    assert conditions[("StringEquals", "kms:ViaService")] == (f"s3.{dev.environment.region}.{partition}.dns_suffix}}",)
    assert conditions[("StringEquals", "kms:EncryptionContext:aws:s3:arn")] == (
        f"arn:{partition}.partition}}:s3:::{dev.environment.checkpoint_bucket}",
    )


def test_the_bucket_is_an_output_and_only_the_checkpoint_function_is_told_its_name(stack):
    bucket = _bucket_name(stack)
    assert stack.config["output"]["checkpoint_bucket"]["value"] == f"${{aws_s3_bucket.{bucket}.bucket}}"
    told = {f["function_name"]: f["environment"]["variables"].get("CHECKPOINT_BUCKET")
            for f in stack.resources("aws_lambda_function").values()}  # fmt: skip
    checkpoint = stack.environment.function_name(Function.CHECKPOINT.value)
    assert told.pop(checkpoint) == f"${{aws_s3_bucket.{bucket}.bucket}}"
    assert set(told.values()) == {None}


# CloudTrail's names (management events, as EventBridge receives them) of the calls that would unlock, re-open,
# re-route or remove the bucket: each must alarm, whoever makes it.
BUCKET_CHANGES = {
    "PutBucketPolicy", "DeleteBucketPolicy", "PutObjectLockConfiguration", "PutBucketReplication",
    "DeleteBucketReplication", "PutBucketLifecycle", "DeleteBucketLifecycle", "PutBucketVersioning",
    "PutBucketEncryption", "DeleteBucketEncryption", "PutBucketPublicAccessBlock", "DeleteBucketPublicAccessBlock",
    "PutBucketAcl", "PutBucketOwnershipControls", "DeleteBucket",
}  # fmt: skip


def test_every_change_to_the_buckets_policy_lock_lifecycle_replication_or_settings_and_its_deletion_alarm(stack):
    from stacks.alarm_topic import RUNBOOK

    (topic,) = stack.resources("aws_sns_topic")
    targets = {t["rule"] for t in stack.resources("aws_cloudwatch_event_target").values()
               if t["arn"] == f"${{aws_sns_topic.{topic}.arn}}"}  # fmt: skip
    rules = [r for n, r in stack.resources("aws_cloudwatch_event_rule").items()
             if f"${{aws_cloudwatch_event_rule.{n}.name}}" in targets]  # fmt: skip
    watching = [r for r in rules if json.loads(r["event_pattern"])["source"] == ["aws.s3"]]
    assert len(watching) == 1, watching
    (rule,) = watching
    pattern = json.loads(rule["event_pattern"])
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    assert set(pattern["detail"]) == {"eventName", "requestParameters"}  # whoever calls: no userIdentity filter
    assert pattern["detail"]["requestParameters"] == {"bucketName": [stack.environment.checkpoint_bucket]}
    assert set(pattern["detail"]["eventName"]) >= BUCKET_CHANGES
    (kind,) = re.findall(rf"Runbook: {RUNBOOK}#([\w-]+)$", rule["description"])
    assert f"\n### {kind}\n" in (REPO / RUNBOOK).read_text()
