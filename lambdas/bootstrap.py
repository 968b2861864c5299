"""Composition root: the service wired from the function's environment, once per container.

Environment (set by PaymentStack, or by the local runtime): LEDGER_TABLE,
IDEMPOTENCY_TABLE, MERCHANTS_TABLE, VAULT_KEY_ID, FINGERPRINT_KEY_ID, SIGNING_KEY_ID, GATEWAY_SECRET_ID,
GATEWAY_BASE_URL, CHECKPOINT_BUCKET (the checkpoint function's) or CHECKPOINT_ARCHIVE_DIR (`make local`), and
optionally GATEWAY_CONNECT_TIMEOUT,
GATEWAY_READ_TIMEOUT, GATEWAY_BACKOFF (seconds) and GATEWAY_ATTEMPTS (those not set
keep the gateway client's defaults).
boto3 honours AWS_ENDPOINT_URL, which is how the local runtime points it at the emulator."""

import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
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
from lambdas.encryption_context import Purpose
from lambdas.gateway import Charge, Gateway, GatewayRefund
from lambdas.ports import CheckpointArchive
from lambdas.service import Tenancy
from lambdas.use_cases import Dependencies, utc_now

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from lambdas.adapters.sparkle import SparkleClient

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

    def charge(self, reference: str, amount: int, currency: str, card: Card, idempotency_key: str) -> Charge:
        return self._client().charge(reference, amount, currency, card, idempotency_key)

    def find_charge(self, reference: str) -> Charge | None:
        return self._client().find_charge(reference)

    def refund(self, charge_id: str, amount: int, reference: str, idempotency_key: str) -> GatewayRefund:
        return self._client().refund(charge_id, amount, reference, idempotency_key)

    def find_refund(self, reference: str) -> GatewayRefund | None:
        return self._client().find_refund(reference)


# Gateway settings (set by PaymentStack from stacks.config.GatewaySettings): variable -> (argument, type).
Setting = tuple[str, Callable[[str], float]]
GATEWAY_TIMEOUTS: dict[str, Setting] = {
    "GATEWAY_CONNECT_TIMEOUT": ("connect_timeout", float),
    "GATEWAY_READ_TIMEOUT": ("read_timeout", float),
}
GATEWAY_RETRY: dict[str, Setting] = {
    "GATEWAY_ATTEMPTS": ("attempts", int),
    "GATEWAY_BACKOFF": ("backoff_seconds", float),
}


def _settings(env: Mapping[str, str], variables: dict[str, Setting]) -> dict[str, Any]:
    """Keyword arguments for the variables that are set; the others keep the client's defaults."""
    return {argument: parse(env[name]) for name, (argument, parse) in variables.items() if env.get(name)}


def _sparkle_client(env: Mapping[str, str]) -> "SparkleClient":
    from lambdas.adapters.sparkle import RetryPolicy, SparkleClient  # noqa: PLC0415 (requests loads on first charge)

    return SparkleClient(
        env["GATEWAY_BASE_URL"],
        GatewaySecret(env["GATEWAY_SECRET_ID"]),
        **_settings(env, GATEWAY_TIMEOUTS),
        retry=RetryPolicy(**_settings(env, GATEWAY_RETRY)),
    )


class AwsAdapters:
    """The adapters on the AWS resources ``env`` names (the functions' environment), built once per container:
    clients and ciphers (with their data-key caches) are shared, the stores are scoped to one merchant."""

    def __init__(
        self,
        env: Mapping[str, str],
        gateway: Gateway,
        clock: Callable[[], datetime] = utc_now,
        epoch_clock: Callable[[], float] = time.time,
    ) -> None:
        kms = boto3.client("kms", config=AWS_CLIENT_CONFIG)
        self.dynamodb = boto3.client("dynamodb", config=AWS_CLIENT_CONFIG)
        self.env = env
        self.gateway = gateway
        self.clock = clock
        self.metadata_cipher = EnvelopeCipher(kms, env["VAULT_KEY_ID"], Purpose.METADATA)
        self.idempotency = DynamoIdempotencyStore(
            self.dynamodb, env["IDEMPOTENCY_TABLE"], self.metadata_cipher, epoch_clock
        )
        self.vault = CardVault(kms, env["FINGERPRINT_KEY_ID"], EnvelopeCipher(kms, env["VAULT_KEY_ID"], Purpose.CARD))
        self.directory = DynamoMerchantDirectory(self.dynamodb, env["MERCHANTS_TABLE"])
        self.signer = KmsSigner(kms, env["SIGNING_KEY_ID"])
        self._s3: Any = None

    def dependencies(self, merchant: Merchant) -> Dependencies[DynamoUnitOfWork]:
        return Dependencies(
            store=DynamoLedgerStore(self.dynamodb, self.env["LEDGER_TABLE"], self.metadata_cipher, merchant.id),
            idempotency=self.idempotency,  # record ids name the merchant (lambdas.edge)
            velocity=DynamoVelocityCounter(self.dynamodb, self.env["IDEMPOTENCY_TABLE"], merchant.id),
            vault=self.vault,
            gateway=self.gateway,
            rules=merchant.rules,
            signer=self.signer,
            archive=self.archive(merchant),
            clock=self.clock,
        )

    def archive(self, merchant: Merchant) -> CheckpointArchive:
        """The write-once copy of the merchant's checkpoints: the directory CHECKPOINT_ARCHIVE_DIR names (`make
        local`), else the bucket CHECKPOINT_BUCKET names (the checkpoint function's only)."""
        directory = self.env.get("CHECKPOINT_ARCHIVE_DIR")
        if directory:
            return DirectoryCheckpointArchive(Path(directory), merchant.id)
        return S3CheckpointArchive(self.s3, self.env.get("CHECKPOINT_BUCKET", ""), merchant.id)

    def s3(self) -> Any:
        """The S3 client, made on first use."""
        if self._s3 is None:
            self._s3 = boto3.client("s3", config=AWS_CLIENT_CONFIG)
        return self._s3

    def tenancy(self) -> Tenancy:
        return Tenancy(self.directory, self.dependencies)


@cache
def adapters() -> AwsAdapters:
    env = os.environ
    return AwsAdapters(env, _GatewayOnFirstUse(lambda: _sparkle_client(env)))


def tenancy() -> Tenancy:
    return adapters().tenancy()
