"""ServiceKeys: the stack's customer-managed KMS keys, one per kind of data."""

from constructs import Construct

from stacks.aws_target import AwsTarget
from stacks.config import EnvironmentConfig
from stacks.payment_key import KeySpec, PaymentKey, PaymentKeyProps


class ServiceKeys:
    """A part of the stack, not a construct of its own: each key is made in ``scope`` under its name, so its
    resources keep the paths, and so the Terraform names, they are deployed under."""

    def __init__(self, scope: Construct, config: EnvironmentConfig, target: AwsTarget) -> None:
        self._scope, self._config, self._target = scope, config, target
        endpoint = target.endpoint
        self.vault = self._key(
            "vault",
            "Card vault, payment metadata and gateway secret",
            via_services=(endpoint("dynamodb"), endpoint("secretsmanager")),
        )
        self.fingerprint = self._key("fingerprint", "Keyed card fingerprints (HMAC)", spec=KeySpec.HMAC_256)
        self.signing = self._key("signing", "Signed checkpoints of the ledger", spec=KeySpec.ECC_NIST_P256)
        # CloudWatch Logs too, once every log group of the stack exists (PaymentStack._encrypt_log_groups).
        self.operations = self._key(
            "operations",
            "Logs and function configuration",
            via_services=(endpoint("lambda"), endpoint("sqs")),
        )

    def _key(self, id: str, description: str, **props) -> PaymentKey:
        config = self._config
        return PaymentKey(
            self._scope,
            id,
            PaymentKeyProps(
                alias=config.key_alias(id),
                description=description,
                account_id=self._target.account_id,
                partition=self._target.partition,
                deletion_window_days=config.key_deletion_window_days,
                administrators=config.key_administrators,
                **props,
            ),
        )
