"""Terraform state that survives: locally outside cdktf.out/ (which a re-synth or `make clean` clears), or in a
versioned, KMS-encrypted S3 bucket with Terraform's native lock file, which `make bootstrap` creates."""

import json
import sys

import boto3
import pytest
from moto import mock_aws

import stacks.config
from stacks.config import DEV, state_key_alias
from tools import bootstrap_state
from tools.bootstrap_state import bootstrap


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def test_without_a_bucket_the_state_lives_outside_cdktf_out(dev, synthesized):
    for name in ("dev", "prod"):
        backend = synthesized[name].config["terraform"]["backend"]
        path = backend["local"]["path"]
        resolved = (synthesized[name].directory / path).resolve()
        assert path == f"../../../.state/payments-{name}.tfstate"
        assert resolved.parent.name == ".state" and "cdktf.out" not in resolved.parts[-3:]


def test_with_a_bucket_the_state_is_in_s3_encrypted_with_the_state_key_and_its_lock_file(synthesized):
    """``encrypt`` alone makes Terraform's S3 backend send SSE-S3 (AES256) with every object it writes (state, lock
    file), over the bucket's KMS default; with ``kms_key_id`` it sends SSE-KMS under that key."""
    scale = synthesized["scale"].environment
    for name, stack_id in (("scale", scale.stack_id), (scale.account_stack_id, scale.account_stack_id)):
        backend = synthesized[name].config["terraform"]["backend"]
        assert backend == {"s3": {"bucket": "payments-scale-state", "key": f"{stack_id}.tfstate", "region": "us-east-1",
                                  "encrypt": True, "kms_key_id": "alias/terraform-state/payments-scale-state",
                                  "use_lockfile": True}}  # fmt: skip


def test_the_backend_names_the_key_bootstrap_made_the_buckets_default(synthesized, aws):
    backend = synthesized["scale"].config["terraform"]["backend"]["s3"]
    s3, kms = boto3.client("s3", region_name=backend["region"]), boto3.client("kms", region_name=backend["region"])
    bootstrap(s3, kms, backend["bucket"], backend["region"], "aws")
    (rule,) = s3.get_bucket_encryption(Bucket=backend["bucket"])["ServerSideEncryptionConfiguration"]["Rules"]
    default = rule["ApplyServerSideEncryptionByDefault"]
    assert default["KMSMasterKeyID"] == kms.describe_key(KeyId=backend["kms_key_id"])["KeyMetadata"]["Arn"]


def test_bootstrap_makes_a_versioned_encrypted_private_tls_only_bucket_and_is_idempotent(aws):
    s3, kms = boto3.client("s3", region_name="eu-west-1"), boto3.client("kms", region_name="eu-west-1")
    assert bootstrap(s3, kms, "payments-prod-state", "eu-west-1", "aws") is True
    assert bootstrap(s3, kms, "payments-prod-state", "eu-west-1", "aws") is False
    assert s3.get_bucket_versioning(Bucket="payments-prod-state")["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket="payments-prod-state")["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    key = kms.describe_key(KeyId=state_key_alias("payments-prod-state"))["KeyMetadata"]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key["Arn"]
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    assert len(kms.list_keys()["Keys"]) == 1  # the second run found the key by its alias
    blocked = s3.get_public_access_block(Bucket="payments-prod-state")["PublicAccessBlockConfiguration"]
    assert all(blocked.values()) and len(blocked) == 4
    (statement,) = json.loads(s3.get_bucket_policy(Bucket="payments-prod-state")["Policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_a_state_key_alias_is_a_valid_kms_alias_for_any_bucket_name():
    assert state_key_alias("payments.prod.state") == "alias/terraform-state/payments-prod-state"


@pytest.mark.parametrize("region, partition", [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")])
def test_bootstrap_writes_its_arns_in_the_regions_partition(aws, monkeypatch, capsys, region, partition):
    config = DEV.model_copy(update={"region": region, "state_bucket": "payments-dev-state"})
    monkeypatch.setattr(stacks.config, "configured_environment", lambda name: config)
    monkeypatch.setattr(sys, "argv", ["bootstrap_state", "--environment", "dev"])
    bootstrap_state.main()
    assert json.loads(capsys.readouterr().out)["created"] is True
    policy = json.loads(boto3.client("s3", region_name=region).get_bucket_policy(Bucket="payments-dev-state")["Policy"])
    assert policy["Statement"][0]["Resource"] == [f"arn:{partition}:s3:::payments-dev-state",
                                                  f"arn:{partition}:s3:::payments-dev-state/*"]  # fmt: skip
