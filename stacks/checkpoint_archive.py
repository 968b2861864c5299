"""CheckpointArchive: the write-once copy of the ledger's signed checkpoints (lambdas/adapters/checkpoint_archive.py),
an S3 bucket that nobody can alter or delete a checkpoint in before its retention ends.

Every object is held under S3 Object Lock in compliance mode for ``retention_days`` from when it is written: no one,
the account's root included, can overwrite or delete it, or shorten its lock. The bucket is versioned, encrypted
with a key of its own (used only through S3; by the checkpoint role only for this bucket), refuses plain HTTP and
blocks public access. Its policy lets only the roles granted ``grant_keep`` put objects, and only as new names
(``If-None-Match: *``: a checkpoint is never put over another); it refuses every principal deleting objects or
versions, changing their lock, any other write of an object (replication, ACLs, tags) and a replication
configuration. Changes to the bucket's policy and settings, which Terraform makes, alarm instead
(``AlarmTopic.alert_on_bucket_administration``). The account's principals whose IAM policies allow it read the copy
(`make verify`)."""

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleFilter,
)
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from constructs import Construct

from stacks.iam import Condition, Grantable, Statement
from stacks.locked_bucket import locked_bucket
from stacks.payment_key import KeySpec, PaymentKey, PaymentKeyProps

ABORTED_UPLOAD_DAYS = 1  # a checkpoint is one small PutObject: an unfinished multipart upload is nobody's
# What no principal may do to the copy: delete an object or a version (a delete marker would hide one), or change
# an object's lock or hold.
NEVER_ACTIONS = (
    "s3:BypassGovernanceRetention",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
)
# Every other way to write an object or change one in place (IAM's S3 object actions), refused to every principal:
# replication writes objects without the put's conditions (who, If-None-Match); ACLs and tags change them. And a
# replication configuration, which would replicate objects into the bucket or copy them out.
OTHER_WRITE_ACTIONS = (
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
    "s3:ObjectOwnerOverrideToBucketOwner",
    "s3:PutObjectAcl",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectVersionTagging",
    "s3:PutReplicationConfiguration",
    "s3:ReplicateDelete",
    "s3:ReplicateObject",
    "s3:ReplicateTags",
    "s3:RestoreObject",
)
KEEP_ACTIONS = ("s3:GetObject", "s3:PutObject")  # put a checkpoint; read the one a raced run finds in its place


@dataclass(frozen=True)
class CheckpointArchiveProps:
    bucket_name: str
    retention_days: int  # Object Lock's, counted from each checkpoint's writing (stacks.config)
    key_alias: str
    account_id: str
    partition: str
    s3_endpoint: str  # S3's endpoint host in the stack's region (the key's kms:ViaService)
    key_deletion_window_days: int = 30
    key_administrators: tuple[str, ...] = ()  # refused every use of the bucket's key (PaymentKeyProps.administrators)


class CheckpointArchive(Construct):
    def __init__(self, scope: Construct, id: str, props: CheckpointArchiveProps) -> None:
        super().__init__(scope, id)
        self.props = props
        self.arn = f"arn:{props.partition}:s3:::{props.bucket_name}"
        self.writers: list[str] = []  # the role ARNs granted grant_keep
        self.key = PaymentKey(
            self,
            "key",
            PaymentKeyProps(
                alias=props.key_alias,
                description="The write-once copy of the ledger's checkpoints",
                account_id=props.account_id,
                partition=props.partition,
                spec=KeySpec.SYMMETRIC,
                deletion_window_days=props.key_deletion_window_days,
                # Reading the copy (`make verify`) and Terraform's bucket configuration, through S3 only.
                via_services=(props.s3_endpoint,),
                administrators=props.key_administrators,
            ),
        )
        self.bucket = locked_bucket(self, "", props.bucket_name, self.key.arn, props.retention_days).bucket
        S3BucketLifecycleConfiguration(
            self,
            "lifecycle",
            bucket=self.bucket.id,
            rule=[
                S3BucketLifecycleConfigurationRule(
                    id="unfinished-uploads",
                    status="Enabled",
                    filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                    abort_incomplete_multipart_upload=[
                        S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                            days_after_initiation=ABORTED_UPLOAD_DAYS
                        )
                    ],
                )
            ],
        )
        self.policy = S3BucketPolicy(self, "policy", bucket=self.bucket.id, policy=self._policy_json())

    @property
    def name(self) -> str:
        return self.bucket.bucket

    def grant_keep(self, grantee: Grantable) -> None:
        """Putting checkpoints (new names only) and reading them back, with the key's use that S3 makes for it on
        this bucket; the bucket's policy then lets only the granted roles put objects."""
        objects = f"{self.arn}/*"
        grantee.add_to_policy(Statement("KeepCheckpoints", KEEP_ACTIONS, (objects,)))
        self.key.grant_via(
            grantee,
            "KeepThroughCheckpointBucket",
            self.props.s3_endpoint,
            ("kms:Decrypt", "kms:GenerateDataKey"),
            {"aws:s3:arn": self.arn},
        )
        self.writers.append(grantee.role_arn)
        self.policy.policy = self._policy_json()

    def _policy_json(self) -> str:
        objects = f"{self.arn}/*"
        everyone = (("AWS", ("*",)),)
        statements = [
            Statement(
                "OnlyOverTls", ("s3:*",), (self.arn, objects),
                (Condition("Bool", "aws:SecureTransport", ("false",)),), principals=everyone, effect="Deny",
            ),
            Statement(
                "OnlyNewNames", ("s3:PutObject",), (objects,),
                (Condition("Null", "s3:if-none-match", ("true",)),), principals=everyone, effect="Deny",
            ),
            Statement("NeverDeletedOrUnlocked", NEVER_ACTIONS, (self.arn, objects), principals=everyone,
                      effect="Deny"),
            Statement("NoOtherWrites", OTHER_WRITE_ACTIONS, (self.arn, objects), principals=everyone, effect="Deny"),
            Statement(
                "OnlyTheCheckpointFunctionWrites", ("s3:PutObject",), (objects,),
                (Condition("ArnNotEquals", "aws:PrincipalArn", tuple(self.writers)),) if self.writers else (),
                principals=everyone, effect="Deny",
            ),
        ]  # fmt: skip
        return json.dumps({"Version": "2012-10-17", "Statement": [s.render_json() for s in statements]})
