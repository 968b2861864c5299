"""Composition root: the service wired from the function's environment, once per container.

Environment (set by PaymentStack, or by the local runtime): LEDGER_TABLE,
IDEMPOTENCY_TABLE, VAULT_KEY_ID, FINGERPRINT_KEY_ID, GATEWAY_SECRET_ID,
GATEWAY_BASE_URL, PAYMENT_RULES (JSON), and optionally GATEWAY_CONNECT_TIMEOUT,
GATEWAY_READ_TIMEOUT, GATEWAY_BACKOFF (seconds) and GATEWAY_ATTEMPTS (those not set
keep the gateway client's defaults).
boto3 honours AWS_ENDPOINT_URL, which is how the local runtime points it at the emulator."""

import json
import os
from functools import cache

import boto3

from lambdas.adapters.envelope import EnvelopeCipher
from lambdas.adapters.idempotency import DynamoIdempotencyStore
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.adapters.vault import CardVault
from lambdas.adapters.velocity import DynamoVelocityCounter
from lambdas.domain.rules import RuleSet
from lambdas.encryption_context import Purpose
from lambdas.service import PaymentService
from lambdas.use_cases import Dependencies

SECRET_MAX_AGE_SECONDS = 300


def gateway_secret(secret_id: str):
    """The Sparkle secret key from Secrets Manager, cached per container for a while."""

    def fetch() -> str:
        from aws_lambda_powertools.utilities import parameters

        return parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE_SECONDS)

    return fetch


class _OnFirstUse:
    """Builds the gateway client when first called: functions that never charge never load it."""

    def __init__(self, build) -> None:
        self._build = build
        self._built = None

    def __getattr__(self, name: str):
        if self._built is None:
            self._built = self._build()
        return getattr(self._built, name)


# Gateway settings (set by PaymentStack from stacks.config.GatewaySettings): variable -> (argument, type).
GATEWAY_TIMEOUTS = {
    "GATEWAY_CONNECT_TIMEOUT": ("connect_timeout", float),
    "GATEWAY_READ_TIMEOUT": ("read_timeout", float),
}
GATEWAY_RETRY = {"GATEWAY_ATTEMPTS": ("attempts", int), "GATEWAY_BACKOFF": ("backoff_seconds", float)}


def _settings(env, variables: dict) -> dict:
    """Keyword arguments for the variables that are set; the others keep the client's defaults."""
    return {argument: parse(env[name]) for name, (argument, parse) in variables.items() if env.get(name)}


def _sparkle_client(env):
    from lambdas.adapters.sparkle import RetryPolicy, SparkleClient

    return SparkleClient(
        env["GATEWAY_BASE_URL"],
        gateway_secret(env["GATEWAY_SECRET_ID"]),
        **_settings(env, GATEWAY_TIMEOUTS),
        retry=RetryPolicy(**_settings(env, GATEWAY_RETRY)),
    )


@cache
def service() -> PaymentService:
    env = os.environ
    kms = boto3.client("kms")
    dynamodb = boto3.client("dynamodb")
    vault_key = env["VAULT_KEY_ID"]
    metadata_cipher = EnvelopeCipher(kms, vault_key, Purpose.METADATA)
    return PaymentService(
        Dependencies(
            store=DynamoLedgerStore(dynamodb, env["LEDGER_TABLE"], metadata_cipher),
            idempotency=DynamoIdempotencyStore(dynamodb, env["IDEMPOTENCY_TABLE"], metadata_cipher),
            velocity=DynamoVelocityCounter(dynamodb, env["IDEMPOTENCY_TABLE"]),
            vault=CardVault(kms, env["FINGERPRINT_KEY_ID"], EnvelopeCipher(kms, vault_key, Purpose.CARD)),
            gateway=_OnFirstUse(lambda: _sparkle_client(env)),
            rules=RuleSet.from_config(json.loads(env.get("PAYMENT_RULES") or "{}")),
        )
    )
