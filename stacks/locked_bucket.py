"""A write-once S3 bucket: versioned, encrypted with a customer key (with an S3 Bucket Key), public access blocked,
and every object held under Object Lock in compliance mode for ``retention_days`` from its writing. No one, the
account's root included, can overwrite or delete a locked object, or shorten its lock. The audit trail's logs and
the ledger's checkpoints are kept in one each; their policies and lifecycles are their owners'."""

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_object_lock_configuration import (
    S3BucketObjectLockConfigurationA,
    S3BucketObjectLockConfigurationRuleA,
    S3BucketObjectLockConfigurationRuleDefaultRetentionA,
)
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import S3BucketVersioningA, S3BucketVersioningVersioningConfiguration
from constructs import Construct

LOCK_MODE = "COMPLIANCE"  # GOVERNANCE could be lifted by anyone granted s3:BypassGovernanceRetention


@dataclass(frozen=True)
class LockedBucket:
    bucket: S3Bucket
    lock: S3BucketObjectLockConfigurationA  # what must exist before anything is written to the bucket


def locked_bucket(scope: Construct, prefix: str, bucket_name: str, key_arn: str, retention_days: int) -> LockedBucket:
    """The bucket and its settings, made in ``scope`` with ids ``<prefix>`` and ``<prefix>-<setting>`` (``bucket``
    and ``<setting>`` for an empty prefix), so each owner keeps its resources' addresses."""

    def named(setting: str) -> str:
        return f"{prefix}-{setting}" if prefix else setting

    bucket = S3Bucket(scope, prefix or "bucket", bucket=bucket_name, object_lock_enabled=True)
    versioning = S3BucketVersioningA(
        scope,
        named("versioning"),
        bucket=bucket.id,
        versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"),
    )
    S3BucketServerSideEncryptionConfigurationA(
        scope,
        named("encryption"),
        bucket=bucket.id,
        rule=[
            S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default=S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                    sse_algorithm="aws:kms", kms_master_key_id=key_arn
                ),
                bucket_key_enabled=True,  # S3 then asks KMS under the bucket's ARN as encryption context
            )
        ],
    )
    S3BucketPublicAccessBlock(
        scope,
        named("public-access"),
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    lock = S3BucketObjectLockConfigurationA(
        scope,
        named("lock"),
        bucket=bucket.id,
        rule=S3BucketObjectLockConfigurationRuleA(
            default_retention=S3BucketObjectLockConfigurationRuleDefaultRetentionA(mode=LOCK_MODE, days=retention_days)
        ),
        depends_on=[versioning],  # Object Lock needs versioning on, when set and when removed
    )
    return LockedBucket(bucket, lock)
