"""Composition root: the service wired from the function's environment, once per container.

Environment (set by PaymentStack, or by the local runtime): LEDGER_TABLE,
IDEMPOTENCY_TABLE, VAULT_KEY_ID, FINGERPRINT_KEY_ID, GATEWAY_SECRET_ID,
GATEWAY_BASE_URL, PAYMENT_RULES (JSON), GATEWAY_READ_TIMEOUT (seconds).
boto3 honours AWS_ENDPOINT_URL, which is how the local runtime points it at the emulator."""

import json
import os
from functools import cache

import boto3

from lambdas.adapters.envelope import EnvelopeCipher
from lambdas.adapters.idempotency import IdempotencyStore
from lambdas.adapters.ledger_store import LedgerStore
from lambdas.adapters.vault import CardVault
from lambdas.domain.rules import RuleSet
from lambdas.service import PaymentService

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


def _sparkle_client(env):
    from lambdas.adapters.sparkle import SparkleClient

    return SparkleClient(env["GATEWAY_BASE_URL"], gateway_secret(env["GATEWAY_SECRET_ID"]),
                         read_timeout=float(env.get("GATEWAY_READ_TIMEOUT", "10")))  # fmt: skip


@cache
def service() -> PaymentService:
    env = os.environ
    kms = boto3.client("kms")
    dynamodb = boto3.client("dynamodb")
    vault_key = env["VAULT_KEY_ID"]
    metadata_cipher = EnvelopeCipher(kms, vault_key, "payment-metadata")
    return PaymentService(
        store=LedgerStore(dynamodb, env["LEDGER_TABLE"], metadata_cipher),
        idempotency=IdempotencyStore(dynamodb, env["IDEMPOTENCY_TABLE"]),
        vault=CardVault(kms, env["FINGERPRINT_KEY_ID"], EnvelopeCipher(kms, vault_key, "card-vault")),
        gateway=_OnFirstUse(lambda: _sparkle_client(env)),
        rules=RuleSet.from_config(json.loads(env.get("PAYMENT_RULES") or "{}")),
    )
