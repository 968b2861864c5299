"""Composition root: the service wired from the function's environment (``lambdas.environment``), once per
container. boto3 honours AWS_ENDPOINT_URL, which is how the local runtime points it at the emulator."""

import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from lambdas.adapters.checkpoint_archive import DirectoryCheckpointArchive, S3CheckpointArchive
from lambdas.adapters.dynamo import DynamoUnitOfWork
from lambdas.adapters.envelope import EnvelopeCipher
from lambdas.adapters.idempotency import DynamoIdempotencyStore
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.adapters.merchants import DynamoMerchantDirectory
from lambdas.adapters.signer import KmsSigner
from lambdas.adapters.vault import CardVault
from lambdas.adapters.velocity import DynamoVelocityCounter
from lambdas.domain.cards import Card
from lambdas.domain.merchants import Merchant
from lambdas.domain.settlements import Settlement, SettlementLine
from lambdas.domain.webhooks import RetrySchedule, UrlPolicy
from lambdas.encryption_context import Purpose
from lambdas.environment import FunctionEnvironment
from lambdas.gateway import Charge, Gateway, GatewayRefund
from lambdas.gateway_settings import RetryPolicy
from lambdas.ports import CheckpointArchive
from lambdas.service import Tenancy
from lambdas.use_cases import Dependencies, utc_now
from lambdas.use_cases.idempotency import IdempotencyKeys

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from lambdas.adapters.settlement_imports import DynamoSettlementImports
    from lambdas.adapters.sparkle import SparkleClient
    from lambdas.adapters.webhook_sender import HttpWebhookSender, SqsDeadLetters
    from lambdas.use_cases.deliveries import DeliverySettings

SECRET_MAX_AGE_SECONDS = 300
# AWS calls answer in milliseconds: bounded waits (not botocore's 60 s) and one retry keep a stuck call from holding a
# request past its deadline for long (an emulator under load can take seconds, hence not tighter).
AWS_CLIENT_CONFIG = Config(connect_timeout=1, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})


class GatewaySecret:
    """The Sparkle secret key from Secrets Manager, cached per container for a while. It is read on a payment's
    path, so with the functions' bounded client settings (``AWS_CLIENT_CONFIG``), not botocore's 60 s waits."""

    def __init__(self, secret_id: str) -> None:
        self.secret_id = secret_id
        self.provider: SecretsProvider | None = None

    def __call__(self) -> str:
        if self.provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: PLC0415 (on first use)

            self.provider = SecretsProvider(boto_config=AWS_CLIENT_CONFIG)
        return str(self.provider.get(self.secret_id, max_age=SECRET_MAX_AGE_SECONDS))


class _GatewayOnFirstUse:
    """The gateway, its client built when first called: functions that never charge never load it."""

    def __init__(self, build: Callable[[], Gateway]) -> None:
        self._build = build
        self._built: Gateway | None = None

    def _client(self) -> Gateway:
        if self._built is None:
            self._built = self._build()
        return self._built

    def charge(
        self, reference: str, amount: int, currency: str, card: Card, idempotency_key: str, capture: bool = True
    ) -> Charge:
        return self._client().charge(reference, amount, currency, card, idempotency_key, capture)

    def capture(self, charge_id: str, amount: int, reference: str, idempotency_key: str) -> Charge:
        return self._client().capture(charge_id, amount, reference, idempotency_key)

    def void(self, charge_id: str, reference: str, idempotency_key: str) -> Charge:
        return self._client().void(charge_id, reference, idempotency_key)

    def find_charge(self, reference: str) -> Charge | None:
        return self._client().find_charge(reference)

    def refund(self, charge_id: str, amount: int, reference: str, idempotency_key: str) -> GatewayRefund:
        return self._client().refund(charge_id, amount, reference, idempotency_key)

    def find_refund(self, reference: str) -> GatewayRefund | None:
        return self._client().find_refund(reference)

    def settlements(self, created_after: int) -> list[Settlement]:
        return self._client().settlements(created_after)

    def settlement_lines(
        self, settlement_id: str, starting_after: str | None = None, limit: int = 100
    ) -> tuple[list[SettlementLine], bool]:
        return self._client().settlement_lines(settlement_id, starting_after, limit)


def _sparkle_client(environment: FunctionEnvironment) -> "SparkleClient":
    """The gateway client with the environment's settings; those not set keep the client's defaults."""
    from lambdas.adapters.sparkle import SparkleClient  # noqa: PLC0415 (requests loads on first charge)

    timeouts = {
        "connect_timeout": environment.gateway_connect_timeout,
        "read_timeout": environment.gateway_read_timeout,
    }
    retry = {"attempts": environment.gateway_attempts, "backoff_seconds": environment.gateway_backoff}
    return SparkleClient(
        environment.gateway_base_url,
        GatewaySecret(environment.gateway_secret_id),
        **_set(timeouts),
        retry=RetryPolicy(**_set(retry)),
    )


def _set(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that are set, as keyword arguments: the others keep their defaults."""
    return {name: value for name, value in settings.items() if value is not None}


class AwsAdapters:
    """The adapters on the AWS resources ``variables`` name (the functions' environment), built once per container:
    clients and ciphers (with their data-key caches) are shared, the stores are scoped to one merchant. The gateway
    is the Sparkle client the environment describes, built on first use, unless one is given."""

    def __init__(
        self,
        variables: Mapping[str, str],
        gateway: Gateway | None = None,
        clock: Callable[[], datetime] = utc_now,
        epoch_clock: Callable[[], float] = time.time,
    ) -> None:
        self.environment = environment = FunctionEnvironment.from_environ(variables)
        kms = boto3.client("kms", config=AWS_CLIENT_CONFIG)
        self.dynamodb = boto3.client("dynamodb", config=AWS_CLIENT_CONFIG)
        self.gateway = gateway or _GatewayOnFirstUse(lambda: _sparkle_client(environment))
        self.clock = clock
        self.metadata_cipher = EnvelopeCipher(kms, environment.vault_key_id, Purpose.METADATA)
        self.idempotency = IdempotencyKeys(
            DynamoIdempotencyStore(self.dynamodb, environment.idempotency_table, self.metadata_cipher), epoch_clock
        )
        card_cipher = EnvelopeCipher(kms, environment.vault_key_id, Purpose.CARD)
        self.vault = CardVault(kms, environment.fingerprint_key_id, card_cipher)
        self.directory = DynamoMerchantDirectory(self.dynamodb, environment.merchants_table)
        self.signer = KmsSigner(kms, environment.signing_key_id)
        self.secret_cipher = EnvelopeCipher(kms, environment.vault_key_id, Purpose.WEBHOOK_SECRET)
        self.webhook_urls = UrlPolicy(allow_loopback_http=environment.webhook_loopback_http == 1)
        self._s3: Any = None

    def dependencies(self, merchant: Merchant) -> Dependencies[DynamoUnitOfWork]:
        return Dependencies(
            store=DynamoLedgerStore(
                self.dynamodb,
                self.environment.ledger_table,
                self.metadata_cipher,
                merchant.id,
                secret_cipher=self.secret_cipher,
            ),
            idempotency=self.idempotency,  # record ids name the merchant (lambdas.edge)
            velocity=DynamoVelocityCounter(self.dynamodb, self.environment.idempotency_table, merchant.id),
            vault=self.vault,
            gateway=self.gateway,
            rules=merchant.rules,
            signer=self.signer,
            archive=self.archive(merchant),
            clock=self.clock,
            webhook_urls=self.webhook_urls,
        )

    def archive(self, merchant: Merchant) -> CheckpointArchive:
        """The write-once copy of the merchant's checkpoints: the directory ``checkpoint_archive_dir`` names (`make
        local`), else the bucket ``checkpoint_bucket`` names (the checkpoint function's only)."""
        directory = self.environment.checkpoint_archive_dir
        if directory:
            return DirectoryCheckpointArchive(Path(directory), merchant.id)
        return S3CheckpointArchive(self.s3, self.environment.checkpoint_bucket or "", merchant.id)

    def s3(self) -> Any:
        """The S3 client, made on first use."""
        if self._s3 is None:
            self._s3 = boto3.client("s3", config=AWS_CLIENT_CONFIG)
        return self._s3

    def tenancy(self) -> Tenancy:
        return Tenancy(self.directory, self.dependencies)

    def settlement_imports(self) -> "DynamoSettlementImports":
        """The operator's record of the gateway's settlements, in the ledger table (the settle function's)."""
        from lambdas.adapters.settlement_imports import DynamoSettlementImports  # noqa: PLC0415 (settle only)

        return DynamoSettlementImports(self.dynamodb, self.environment.ledger_table)

    def webhook_sender(self) -> "HttpWebhookSender":
        """The HTTPS sender, loaded only by the delivery function (it stays out of the other functions' cold starts)."""
        from lambdas.adapters.webhook_sender import HttpWebhookSender  # noqa: PLC0415 (delivery only)

        return HttpWebhookSender(self.webhook_urls)

    def dead_letters(self) -> "SqsDeadLetters":
        """The dead-letter queue of events never delivered (the delivery function's only)."""
        from lambdas.adapters.webhook_sender import SqsDeadLetters  # noqa: PLC0415 (delivery only)

        return SqsDeadLetters(boto3.client("sqs", config=AWS_CLIENT_CONFIG), self.environment.webhook_dead_letter_queue)

    def delivery_settings(self) -> "DeliverySettings":
        from lambdas.use_cases.deliveries import DeliverySettings  # noqa: PLC0415 (delivery only)

        environment = self.environment
        settings = DeliverySettings(RetrySchedule.from_setting(environment.webhook_retry_waits))
        if environment.webhook_lease_seconds is not None:
            settings = replace(settings, lease=timedelta(seconds=environment.webhook_lease_seconds))
        return settings


@cache
def adapters() -> AwsAdapters:
    return AwsAdapters(os.environ)


def tenancy() -> Tenancy:
    return adapters().tenancy()


def start_afresh_after_restore() -> None:
    """Run when Lambda resumes an environment from a SnapStart snapshot (docs/adr/0008-snapstart.md). Every
    environment resumed from one snapshot starts with its memory: the ``random`` module's state (the retries'
    jitter) is seeded again, and adapters built before the snapshot (clients, data-key caches, the gateway secret) are
    dropped, to be built on first use."""
    random.seed()
    adapters.cache_clear()


try:  # the runtime hooks of Lambda's managed Python runtimes; elsewhere nothing is restored from a snapshot
    from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    pass
else:
    register_after_restore(start_afresh_after_restore)
