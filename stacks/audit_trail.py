"""AuditTrail: the account's CloudTrail trail (PCI DSS 10), into a bucket whose logs cannot be changed or deleted.

The trail records every management event (Secrets Manager's GetSecretValue is one: a read of the gateway secret
is logged with who read it) and the data events of the service's DynamoDB tables (each item read and written in the
ledger, by whom), with log-file validation (a signed digest every hour: `aws cloudtrail validate-logs`). The bucket
is versioned, encrypted with a key of its own, refuses plain HTTP, blocks public access, and holds every object
under S3 Object Lock in compliance mode for ``retention_days``: no one, the account's root included, can overwrite
or delete a log within it."""

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudtrail import (
    Cloudtrail,
    CloudtrailAdvancedEventSelector,
    CloudtrailAdvancedEventSelectorFieldSelector,
)
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
)
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from constructs import Construct

from stacks.aws_target import AwsTarget
from stacks.iam import Condition, Statement
from stacks.locked_bucket import locked_bucket
from stacks.payment_key import KeySpec, PaymentKey, PaymentKeyProps, ServicePrincipalUse

ABORTED_UPLOAD_DAYS = 7


@dataclass(frozen=True)
class AuditTrailProps:
    name: str  # the trail's, its bucket's and its key's names start with it
    tables_prefix: str  # the service's tables' names start with it: their data events are recorded
    retention_days: int  # Object Lock's: PCI DSS 10.5.1 keeps a year
    key_deletion_window_days: int = 30
    key_administrators: tuple[str, ...] = ()  # refused every use of the trail's key (PaymentKeyProps.administrators)


class AuditTrail(Construct):
    def __init__(self, scope: Construct, id: str, target: AwsTarget, props: AuditTrailProps) -> None:
        super().__init__(scope, id)
        self.target, self.props = target, props
        self.trail_arn = target.arn("cloudtrail", f"trail/{props.name}")
        self.cloudtrail = f"cloudtrail.{target.dns_suffix}"
        self.key = self._key()
        name = f"{props.name}-{target.account_id}-{target.region}"
        logs = locked_bucket(self, "logs", name, self.key.arn, props.retention_days)
        self.bucket, self.lock = logs.bucket, logs.lock
        self._expire_past_retention()
        policy = self._bucket_policy()
        self.trail = self._trail(depends_on=[policy, self.lock])

    def _key(self) -> PaymentKey:
        account, partition = self.target.account_id, self.target.partition
        this_trail = Condition("StringEquals", "aws:SourceArn", (self.trail_arn,))
        return PaymentKey(
            self,
            "key",
            PaymentKeyProps(
                alias=f"alias/{self.props.name}",
                description="The audit trail's log files",
                account_id=account,
                partition=partition,
                spec=KeySpec.SYMMETRIC,
                deletion_window_days=self.props.key_deletion_window_days,
                administrators=self.props.key_administrators,
                # CloudTrail's documented statements ("Configure AWS KMS key policies for CloudTrail"), each bound to
                # this trail: log files' data keys under the trail's encryption context; DescribeKey, which carries
                # no encryption context; Decrypt, which a bucket with an S3 Bucket Key needs to create or update it.
                service_principals=(
                    ServicePrincipalUse(
                        principal=self.cloudtrail,
                        actions=("kms:GenerateDataKey*",),
                        conditions=(
                            this_trail,
                            Condition(
                                "StringLike",
                                "kms:EncryptionContext:aws:cloudtrail:arn",
                                (f"arn:{partition}:cloudtrail:*:{account}:trail/*",),
                            ),
                        ),
                    ),
                    ServicePrincipalUse(
                        principal=self.cloudtrail, actions=("kms:DescribeKey",), conditions=(this_trail,)
                    ),
                    ServicePrincipalUse(principal=self.cloudtrail, actions=("kms:Decrypt",), conditions=(this_trail,)),
                ),
                # Reading the logs: principals of this account whose IAM policy allows it, for trail logs only.
                account_decrypt_conditions=(
                    Condition("StringEquals", "kms:CallerAccount", (account,)),
                    Condition("Null", "kms:EncryptionContext:aws:cloudtrail:arn", ("false",)),
                ),
            ),
        )

    def _expire_past_retention(self) -> None:
        retention_days = self.props.retention_days
        S3BucketLifecycleConfiguration(
            self,
            "logs-lifecycle",
            bucket=self.bucket.id,
            rule=[
                S3BucketLifecycleConfigurationRule(
                    id="past-retention",
                    status="Enabled",
                    filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                    expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=retention_days + 1)],
                    # an upload CloudTrail never finished holds no log: its parts go after a week
                    abort_incomplete_multipart_upload=[
                        S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                            days_after_initiation=ABORTED_UPLOAD_DAYS
                        )
                    ],
                    noncurrent_version_expiration=[
                        S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                            noncurrent_days=retention_days + 1
                        )
                    ],
                )
            ],
        )

    def _bucket_policy(self) -> S3BucketPolicy:
        target, trail_arn, cloudtrail = self.target, self.trail_arn, self.cloudtrail
        account = target.account_id
        bucket_arn = f"arn:{target.partition}:s3:::{self.props.name}-{account}-{target.region}"
        statements = [
            Statement(
                "TrailChecksTheBucket", ("s3:GetBucketAcl",), (bucket_arn,),
                (Condition("StringEquals", "aws:SourceArn", (trail_arn,)),),
                principals=(("Service", (cloudtrail,)),),
            ),
            Statement(
                "TrailWritesItsLogs", ("s3:PutObject",), (f"{bucket_arn}/AWSLogs/{account}/*",),
                (Condition("StringEquals", "aws:SourceArn", (trail_arn,)),
                 Condition("StringEquals", "s3:x-amz-acl", ("bucket-owner-full-control",))),
                principals=(("Service", (cloudtrail,)),),
            ),
            Statement(
                "OnlyOverTls", ("s3:*",), (bucket_arn, f"{bucket_arn}/*"),
                (Condition("Bool", "aws:SecureTransport", ("false",)),),
                principals=(("AWS", ("*",)),), effect="Deny",
            ),
        ]  # fmt: skip
        return S3BucketPolicy(
            self,
            "logs-policy",
            bucket=self.bucket.id,
            policy=json.dumps({"Version": "2012-10-17", "Statement": [s.render_json() for s in statements]}),
        )

    def _trail(self, depends_on: list) -> Cloudtrail:
        target, props = self.target, self.props
        table_arns = f"arn:{target.partition}:dynamodb:{target.region}:{target.account_id}:table/{props.tables_prefix}"
        return Cloudtrail(
            self,
            "trail",
            name=props.name,
            s3_bucket_name=self.bucket.id,
            kms_key_id=self.key.arn,
            enable_log_file_validation=True,
            is_multi_region_trail=True,
            include_global_service_events=True,
            advanced_event_selector=[
                CloudtrailAdvancedEventSelector(
                    name="Every management event",
                    field_selector=[
                        CloudtrailAdvancedEventSelectorFieldSelector(field="eventCategory", equal_to=["Management"])
                    ],
                ),
                CloudtrailAdvancedEventSelector(
                    name="Every item read and written in the service's tables",
                    field_selector=[
                        CloudtrailAdvancedEventSelectorFieldSelector(field="eventCategory", equal_to=["Data"]),
                        CloudtrailAdvancedEventSelectorFieldSelector(
                            field="resources.type", equal_to=["AWS::DynamoDB::Table"]
                        ),
                        CloudtrailAdvancedEventSelectorFieldSelector(field="resources.ARN", starts_with=[table_arns]),
                    ],
                ),
            ],
            depends_on=depends_on,
        )
