"""Log groups the stack makes itself, each encrypted with a customer key and kept for a set time."""

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from constructs import Construct

from stacks.payment_key import PaymentKey


def encrypted_log_group(
    scope: Construct, id: str, name: str, key: PaymentKey, retention_days: int
) -> CloudwatchLogGroup:
    return CloudwatchLogGroup(scope, id, name=name, retention_in_days=retention_days, kms_key_id=key.arn)
