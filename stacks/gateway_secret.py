"""GatewaySecret: the Sparkle secret key in Secrets Manager, encrypted with a customer key.

Terraform creates only the secret's container: its value is put by an operator
(or the local runtime), so it never appears in Terraform state or outputs."""

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from constructs import Construct

from stacks.iam import Grantable, Statement
from stacks.payment_key import PaymentKey


@dataclass(frozen=True)
class GatewaySecretProps:
    name: str
    key: PaymentKey
    via_service: str  # Secrets Manager's endpoint host in the stack's region and partition
    arn_prefix: str  # "arn:<partition>:secretsmanager:<region>:<account>:secret:"
    recovery_window_days: int = 30


class GatewaySecret(Construct):
    def __init__(self, scope: Construct, id: str, props: GatewaySecretProps) -> None:
        super().__init__(scope, id)
        self.props = props
        self.secret = SecretsmanagerSecret(
            self,
            "secret",
            name=props.name,
            description="Sparkle gateway secret key",
            kms_key_id=props.key.arn,
            recovery_window_in_days=props.recovery_window_days,
        )

    @property
    def arn(self) -> str:
        return self.secret.arn

    def grant_read(self, grantee: Grantable) -> None:
        grantee.add_to_policy(Statement("ReadGatewaySecret", ("secretsmanager:GetSecretValue",), (self.arn,)))
        # Secrets Manager decrypts the value with the grantee's permissions, naming the secret in the context.
        context = {"SecretARN": f"{self.props.arn_prefix}{self.props.name}-??????"}  # Secrets Manager's suffix
        self.props.key.grant_via(grantee, "ReadSecret", self.props.via_service, ("kms:Decrypt",), context)
