"""`make bootstrap ENV=prod`: the S3 bucket an environment's Terraform state lives in (``state_bucket`` in
stacks/config.py), created once per account, before the first deploy: versioned (every state kept), encrypted
by default with a KMS key of its own (rotated yearly; ``state_key_alias``, the key every S3 backend names),
closed to the public, and reachable over TLS only. Terraform's own lock file sits beside the state
(``use_lockfile``), so no lock table is needed. ARNs are in the region's partition (aws, aws-cn, aws-us-gov).
Running it again changes nothing."""

import argparse
import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

from stacks.config import state_key_alias


def bucket_policy(bucket: str, partition: str) -> dict[str, Any]:
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def state_key(kms: Any, bucket: str) -> str:
    """The ARN of ``bucket``'s state key (``state_key_alias``), made the first time."""
    alias = state_key_alias(bucket)
    try:
        arn: str = kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "NotFoundException":
            raise
        metadata = kms.create_key(Description=f"Terraform state in s3://{bucket}")["KeyMetadata"]
        kms.create_alias(AliasName=alias, TargetKeyId=metadata["KeyId"])
        arn = metadata["Arn"]
    kms.enable_key_rotation(KeyId=arn)
    return arn


def bootstrap(s3: Any, kms: Any, bucket: str, region: str, partition: str) -> bool:
    """Create and lock down ``bucket``, encrypted by default with its state key; returns whether the bucket was
    created (False: it was there already)."""
    try:
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **location)
        created = True
    except ClientError as error:
        if error.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
        created = False
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": state_key(kms, bucket),
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(bucket_policy(bucket, partition)))
    return created


def main() -> None:
    from stacks.config import ENVIRONMENT_NAMES, configured_environment

    parser = argparse.ArgumentParser(prog="python -m tools.bootstrap_state", description=__doc__.split("\n\n")[0])
    parser.add_argument("--environment", required=True, choices=ENVIRONMENT_NAMES)
    args = parser.parse_args()
    config = configured_environment(args.environment)
    if not config.state_bucket:
        parser.error(f"{args.environment} keeps its state locally (.state/): set state_bucket to use S3")
    session = boto3.Session(region_name=config.region)
    partition = session.get_partition_for_region(config.region)
    created = bootstrap(session.client("s3"), session.client("kms"), config.state_bucket, config.region, partition)
    print(json.dumps({"bucket": config.state_bucket, "created": created, "key": state_key_alias(config.state_bucket)}))


if __name__ == "__main__":
    main()
