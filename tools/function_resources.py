"""What the functions need in AWS, made with boto3 wherever it points (moto in process,
for the service tests and `make bench`; the deployed stack makes the real ones)."""

from collections.abc import Mapping
from typing import Any

import boto3

from lambdas.adapters.dynamo import to_item
from lambdas.adapters.merchants import merchant_items
from lambdas.storage_schema import IDEMPOTENCY, LEDGER, MERCHANTS, TableSchema
from sparkle_sandbox.server import DEFAULT_SECRET_KEY


def create_table(client, name: str, schema: TableSchema) -> None:
    indexes = [
        {"IndexName": i.name, "KeySchema": i.key_schema, "Projection": {"ProjectionType": i.projection}}
        for i in schema.indexes
    ]
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=schema.key_schema,
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in schema.key_attributes],
        **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
    )


# A merchant: the principals that act for it, and its rules (``RuleSet.from_config``'s shape).
MerchantSpec = tuple[tuple[str, ...], dict[str, Any]]


def provision(gateway_url: str, suffix: str, merchants: Mapping[str, MerchantSpec]) -> dict[str, str]:
    """The tables (the merchants table holding ``merchants``), the vault, fingerprint and signing keys, the
    checkpoints' write-once bucket (Object Lock on, as the stack makes it) and the gateway secret; returns the
    functions' environment naming them (timeouts are the caller's)."""
    dynamodb, kms = boto3.client("dynamodb"), boto3.client("kms")
    env = {
        "LEDGER_TABLE": f"ledger-{suffix}",
        "IDEMPOTENCY_TABLE": f"idempotency-{suffix}",
        "MERCHANTS_TABLE": f"merchants-{suffix}",
        "VAULT_KEY_ID": kms.create_key()["KeyMetadata"]["Arn"],
        "FINGERPRINT_KEY_ID": kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"],
        "SIGNING_KEY_ID": kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"],
        "GATEWAY_SECRET_ID": boto3.client("secretsmanager").create_secret(
            Name=f"sparkle-{suffix}", SecretString=DEFAULT_SECRET_KEY
        )["ARN"],
        "GATEWAY_BASE_URL": gateway_url,
        "CHECKPOINT_BUCKET": f"checkpoints-{suffix}",
    }
    boto3.client("s3").create_bucket(Bucket=env["CHECKPOINT_BUCKET"], ObjectLockEnabledForBucket=True)
    create_table(dynamodb, env["LEDGER_TABLE"], LEDGER)
    create_table(dynamodb, env["IDEMPOTENCY_TABLE"], IDEMPOTENCY)
    create_table(dynamodb, env["MERCHANTS_TABLE"], MERCHANTS)
    for merchant_id, (principals, rules) in merchants.items():
        for item in merchant_items(merchant_id, principals, rules):
            dynamodb.put_item(TableName=env["MERCHANTS_TABLE"], Item=to_item(item))
    return env
