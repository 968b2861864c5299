"""Where a stack deploys: its Terraform state (S3 or .state/) and an AWS provider held to one account and region,
with every service endpoint switchable to a local emulator. Every stack of the app starts with ``AwsTarget``."""

from dataclasses import dataclass

from cdktf import LocalBackend, S3Backend, TerraformStack, TerraformVariable
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderEndpoints
from constructs import Construct

from stacks.config import state_key_alias

# Services the provider talks to (binding argument names); all follow the emulator endpoint when one is set.
ENDPOINT_SERVICES = (
    "apigateway",
    "cloudwatchlogs",
    "dynamodb",
    "events",
    "iam",
    "kms",
    "lambda_",
    "secretsmanager",
    "sqs",
    "sts",
    "wafv2",
)
LOCAL_STATE_DIR = ".state"  # at the repository root


@dataclass(frozen=True)
class AwsTargetProps:
    account_id: str  # the only account Terraform may change
    region: str
    state_key: str  # the state file's name, locally and in the bucket
    state_bucket: str | None = None  # None: .state/ at the repository root


class AwsTarget(Construct):
    """The backend and provider of ``scope``'s stack, and the account, partition and endpoints it deploys to."""

    def __init__(self, scope: TerraformStack, id: str, props: AwsTargetProps) -> None:
        super().__init__(scope, id)
        if props.state_bucket:
            # encrypt without kms_key_id would send SSE-S3 (AES256) with every object, over the bucket's KMS default:
            # with it, the state and its lock file are SSE-KMS under the key `make bootstrap` made.
            backend = S3Backend(
                scope,
                bucket=props.state_bucket,
                key=props.state_key,
                region=props.region,
                encrypt=True,
                kms_key_id=state_key_alias(props.state_bucket),
            )
            backend.add_override("use_lockfile", True)  # Terraform's own lock file in the bucket: no lock table
        else:
            # Relative to cdktf.out/stacks/<id>/, where Terraform runs: <repo>/.state/, which outlives cdktf.out/.
            LocalBackend(scope, path=f"../../../{LOCAL_STATE_DIR}/{props.state_key}")
        endpoint = TerraformVariable(
            scope,
            "aws_endpoint_url",
            type="string",
            default="",
            description="AWS-compatible endpoint for every service (a local emulator); empty means AWS itself",
        )
        AwsProvider(
            scope,
            "aws",
            region=props.region,
            allowed_account_ids=[props.account_id],  # credentials for any other account fail before a change
            endpoints=[AwsProviderEndpoints(**{service: endpoint.string_value for service in ENDPOINT_SERVICES})],
        )
        self.region = props.region
        self.account_id = DataAwsCallerIdentity(scope, "caller").account_id
        aws_partition = DataAwsPartition(scope, "partition")
        self.partition, self.dns_suffix = aws_partition.partition, aws_partition.dns_suffix

    def endpoint(self, service: str) -> str:
        """A service's endpoint host in this region and partition (what ``kms:ViaService`` names)."""
        return f"{service}.{self.region}.{self.dns_suffix}"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"
