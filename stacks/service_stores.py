"""ServiceStores: where the service keeps its data: the three tables, the gateway secret, and the checkpoints'
write-once bucket."""

from constructs import Construct

from stacks.aws_target import AwsTarget
from stacks.checkpoint_archive import CheckpointArchive, CheckpointArchiveProps
from stacks.config import EnvironmentConfig
from stacks.gateway_secret import GatewaySecret, GatewaySecretProps
from stacks.ledger_table import IdempotencyTable, LedgerTable, MerchantsTable, TableProps
from stacks.payment_key import PaymentKey


class ServiceStores:
    """A part of the stack, not a construct of its own (as ``ServiceKeys``): each store is made in ``scope``
    under its name. The tables and the secret are encrypted with the vault key; the bucket has a key of its own."""

    def __init__(self, scope: Construct, config: EnvironmentConfig, target: AwsTarget, vault_key: PaymentKey) -> None:
        endpoint = target.endpoint

        def table_props(name: str) -> TableProps:
            return TableProps(
                f"{config.prefix}-{name}",
                vault_key,
                endpoint("dynamodb"),
                deletion_protection=config.deletion_protection,
            )

        self.ledger = LedgerTable(scope, "ledger", table_props("ledger"))
        self.idempotency = IdempotencyTable(scope, "idempotency", table_props("idempotency"))
        self.merchants = MerchantsTable(scope, "merchants", table_props("merchants"))
        self.gateway_secret = GatewaySecret(
            scope,
            "gateway-secret",
            GatewaySecretProps(
                name=config.gateway_secret_name,
                key=vault_key,
                via_service=endpoint("secretsmanager"),
                arn_prefix=target.arn("secretsmanager", "secret:"),
                recovery_window_days=config.key_deletion_window_days,
            ),
        )
        self.archive = CheckpointArchive(
            scope,
            "checkpoint-archive",
            CheckpointArchiveProps(
                bucket_name=config.checkpoint_bucket,
                retention_days=config.checkpoint_retention_days,
                key_alias=config.key_alias("checkpoints"),
                account_id=target.account_id,
                partition=target.partition,
                s3_endpoint=endpoint("s3"),
                key_deletion_window_days=config.key_deletion_window_days,
                key_administrators=config.key_administrators,
            ),
        )
