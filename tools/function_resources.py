"""What the functions need in AWS, made with boto3 wherever it points (moto in process,
for the service tests and `make bench`; the deployed stack makes the real ones)."""

from collections.abc import Mapping
from typing import Any

import boto3

from lambdas.environment import FunctionEnvironment
from lambdas.storage_schema import IDEMPOTENCY, LEDGER, MERCHANTS, TableSchema, merchant_items, to_item
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


def create_keys() -> dict[str, str]:
    """The vault, fingerprint and signing keys, by the ``FunctionEnvironment`` fields that name them."""
    kms = boto3.client("kms")
    return {
        "vault_key_id": kms.create_key()["KeyMetadata"]["Arn"],
        "fingerprint_key_id": kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"],
        "signing_key_id": kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"],
    }


def provision(
    gateway_url: str, suffix: str, merchants: Mapping[str, MerchantSpec], keys: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The tables (the merchants table holding ``merchants``), the keys (``keys``, made by ``create_keys``, else
    new ones), the checkpoints' write-once bucket (Object Lock on, as the stack makes it) and the gateway secret;
    returns the functions' environment naming them (``FunctionEnvironment.to_variables``; timeouts are the
    caller's)."""
    dynamodb = boto3.client("dynamodb")
    secret = boto3.client("secretsmanager").create_secret(Name=f"sparkle-{suffix}", SecretString=DEFAULT_SECRET_KEY)
    environment = FunctionEnvironment(
        ledger_table=f"ledger-{suffix}",
        idempotency_table=f"idempotency-{suffix}",
        merchants_table=f"merchants-{suffix}",
        gateway_secret_id=secret["ARN"],
        gateway_base_url=gateway_url,
        checkpoint_bucket=f"checkpoints-{suffix}",
        **(keys or create_keys()),
    )
    boto3.client("s3").create_bucket(Bucket=environment.checkpoint_bucket, ObjectLockEnabledForBucket=True)
    create_table(dynamodb, environment.ledger_table, LEDGER)
    create_table(dynamodb, environment.idempotency_table, IDEMPOTENCY)
    create_table(dynamodb, environment.merchants_table, MERCHANTS)
    for merchant_id, (principals, rules) in merchants.items():
        for item in merchant_items(merchant_id, principals, rules):
            dynamodb.put_item(TableName=environment.merchants_table, Item=to_item(item))
    return environment.to_variables()
