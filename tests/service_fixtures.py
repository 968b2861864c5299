"""Fixtures for the service: AWS in-process (moto), the Sparkle sandbox as a real process."""

import io
import json
import logging
import uuid

import boto3
import pytest
import requests
from moto import mock_aws

from lambdas import bootstrap
from lambdas.logs import MaskingFormatter, logger
from lambdas.storage_schema import IDEMPOTENCY, LEDGER, TableSchema
from sparkle_sandbox.server import DEFAULT_SECRET_KEY
from tests.leaks import card_data_in, card_data_in_item
from tools.emulator import EMULATOR_CREDENTIALS, free_port, sandbox_server

REGION = "us-east-1"
SLOW_CARD_DELAY = 3.0  # seconds; the client's read timeout in tests is shorter


def create_table(client, name: str, schema: TableSchema) -> None:
    indexes = [{"IndexName": i.name, "KeySchema": i.key_schema, "Projection": {"ProjectionType": "ALL"}}
               for i in schema.indexes]  # fmt: skip
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=schema.key_schema,
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in schema.key_attributes],
        **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
    )


@pytest.fixture(scope="session")
def sandbox_url():
    with sandbox_server(free_port(), "--slow-card-delay", str(SLOW_CARD_DELAY)) as url:
        yield url


@pytest.fixture
def sandbox(sandbox_url):
    """The sandbox, emptied and without faults for each test."""
    requests.post(f"{sandbox_url}/_sandbox/reset", timeout=5)
    requests.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": 0, "error_rate": 0, "drop_rate": 0}, timeout=5)
    return Sandbox(sandbox_url)


class Sandbox:
    def __init__(self, url: str) -> None:
        self.url = url

    def charges(self) -> list[dict]:
        return requests.get(f"{self.url}/_sandbox/charges", timeout=5).json()["data"]

    def faults(self, **settings) -> None:
        requests.post(f"{self.url}/_sandbox/faults", json=settings, timeout=5)


@pytest.fixture
def captured_logs():
    """Every log line the service writes during a test, formatted as it would be written."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingFormatter())
    std_logger = logging.getLogger(logger.service)
    std_logger.addHandler(handler)
    yield stream
    std_logger.removeHandler(handler)
    assert card_data_in(stream.getvalue()) == [], "card data in a log line"


@pytest.fixture
def aws_env(sandbox, monkeypatch, captured_logs):
    """Tables, keys and the gateway secret in moto; the function environment set as in Lambda.

    On teardown every stored item is scanned: no test may leave card data in plain text."""
    for name, value in EMULATOR_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        suffix = uuid.uuid4().hex[:6]
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        kms = boto3.client("kms", region_name=REGION)
        env = {
            "LEDGER_TABLE": f"ledger-{suffix}",
            "IDEMPOTENCY_TABLE": f"idempotency-{suffix}",
            "VAULT_KEY_ID": kms.create_key()["KeyMetadata"]["Arn"],
            "FINGERPRINT_KEY_ID": kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"],
            "GATEWAY_SECRET_ID": boto3.client("secretsmanager", region_name=REGION).create_secret(
                Name=f"sparkle-{suffix}", SecretString=DEFAULT_SECRET_KEY)["ARN"],
            "GATEWAY_BASE_URL": sandbox.url,
            "GATEWAY_READ_TIMEOUT": "1",
            "PAYMENT_RULES": json.dumps({"velocity_per_hour": 5, "max_amount": {"USD": 1_000_000},
                                         "blocked_fingerprints": []}),
        }  # fmt: skip
        create_table(dynamodb, env["LEDGER_TABLE"], LEDGER)
        create_table(dynamodb, env["IDEMPOTENCY_TABLE"], IDEMPOTENCY)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        bootstrap.service.cache_clear()
        yield env
        bootstrap.service.cache_clear()
        for table in (env["LEDGER_TABLE"], env["IDEMPOTENCY_TABLE"]):
            for item in dynamodb.scan(TableName=table)["Items"]:
                assert card_data_in_item(item) == [], f"card data stored in {table}"
