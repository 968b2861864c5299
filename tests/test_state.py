"""Terraform state that survives: locally outside cdktf.out/ (which a re-synth or `make clean` clears), or in a
versioned, KMS-encrypted S3 bucket with Terraform's native lock file, which `make bootstrap` creates."""

import json

import boto3
from moto import mock_aws

from tools.bootstrap_state import bootstrap


def test_without_a_bucket_the_state_lives_outside_cdktf_out(dev, synthesized):
    for name in ("dev", "prod"):
        backend = synthesized[name].config["terraform"]["backend"]
        path = backend["local"]["path"]
        resolved = (synthesized[name].directory / path).resolve()
        assert path == f"../../../.state/payments-{name}.tfstate"
        assert resolved.parent.name == ".state" and "cdktf.out" not in resolved.parts[-3:]


def test_with_a_bucket_the_state_is_in_s3_encrypted_with_its_lock_file(synthesized):
    backend = synthesized["scale"].config["terraform"]["backend"]
    assert backend == {"s3": {"bucket": "payments-scale-state", "key": "payments-scale.tfstate",
                              "region": "us-east-1", "encrypt": True, "use_lockfile": True}}  # fmt: skip


def test_bootstrap_makes_a_versioned_encrypted_private_tls_only_bucket_and_is_idempotent(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        assert bootstrap(s3, "payments-prod-state", "eu-west-1") is True
        assert bootstrap(s3, "payments-prod-state", "eu-west-1") is False
        assert s3.get_bucket_versioning(Bucket="payments-prod-state")["Status"] == "Enabled"
        (rule,) = s3.get_bucket_encryption(Bucket="payments-prod-state")["ServerSideEncryptionConfiguration"]["Rules"]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        blocked = s3.get_public_access_block(Bucket="payments-prod-state")["PublicAccessBlockConfiguration"]
        assert all(blocked.values()) and len(blocked) == 4
        (statement,) = json.loads(s3.get_bucket_policy(Bucket="payments-prod-state")["Policy"])["Statement"]
        assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
