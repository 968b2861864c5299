"""`python -m tools.adopt_records --environment prod --merchant checkout`: hands the records written before
merchants existed to one merchant, once, when upgrading a deployment that holds data.

Before merchants, keys were ``TOKEN#<id>``, ``PAYMENT#<id>`` and ``LEDGER#<id>``, and pending items sat in the
index partition ``pending``; the service now reads only ``<KIND>#<merchant>#<id>`` and ``pending#<merchant>``.
Each old item is copied under the merchant's key (a conditional put: running it again changes nothing), with its
pending partition renamed; an old payment or refund then leaves the pending index (its copy is reconciled
instead) and is marked ``adopted_by``. Ledger entries are copied and never changed. Sealed card data and metadata
stay valid: their encryption context names the token or payment id, not the merchant.

Run it with the operator's credentials (the functions' roles may not update ledger entries) and, because the
idempotency keys of requests made before the upgrade were scoped to the caller rather than the merchant, when no
client is still retrying a request made before the upgrade. boto3 honours AWS_ENDPOINT_URL (the emulator)."""

import argparse
import json
from collections import Counter
from typing import Any

import boto3
from botocore.exceptions import ClientError

from lambdas.adapters.ledger.payments import pending_partition
from lambdas.storage_schema import LEDGER, Partition

PK = LEDGER.partition_key
PENDING_PK = LEDGER.indexes[0].partition_key


def _merchant_key(pk: str, merchant: str) -> str | None:
    """The merchant's key for an item written before merchants, or None for any other item."""
    for partition in Partition:
        identifier = pk.removeprefix(partition.value)
        if identifier != pk and "#" not in identifier:
            return partition.key(merchant, identifier)
    return None


def adopt(client: Any, table: str, merchant: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            new_key = _merchant_key(item[PK]["S"], merchant)
            if new_key is None:
                continue
            copy = {**item, PK: {"S": new_key}}
            if PENDING_PK in item:
                payment_id = item[PK]["S"].removeprefix(Partition.PAYMENT.value)  # only payments and refunds pend
                copy[PENDING_PK] = {"S": pending_partition(merchant, payment_id)}
            try:
                client.put_item(
                    TableName=table,
                    Item=copy,
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": PK},
                )
                counts["adopted"] += 1
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                counts["already_adopted"] += 1
            if PENDING_PK in item:  # the copy is reconciled; the old item leaves the pending index
                client.update_item(
                    TableName=table,
                    Key={PK: item[PK], LEDGER.sort_key: item[LEDGER.sort_key]},
                    UpdateExpression="REMOVE #pending SET adopted_by = :merchant",
                    ExpressionAttributeNames={"#pending": PENDING_PK},
                    ExpressionAttributeValues={":merchant": {"S": merchant}},
                )
    return counts


def main() -> None:
    from stacks.config import ENVIRONMENT_NAMES, configured_environment

    parser = argparse.ArgumentParser(prog="python -m tools.adopt_records", description=__doc__.split("\n\n")[0])
    parser.add_argument("--environment", required=True, choices=ENVIRONMENT_NAMES)
    parser.add_argument("--merchant", required=True, help="the merchant that made the payments so far")
    args = parser.parse_args()
    config = configured_environment(args.environment)
    if args.merchant not in {m.id for m in config.merchants}:
        parser.error(f"{args.merchant} is not a merchant of {args.environment}")
    table = f"{config.prefix}-ledger"
    counts = adopt(boto3.client("dynamodb", region_name=config.region), table, args.merchant)
    print(json.dumps({"table": table, "merchant": args.merchant, **counts}))


if __name__ == "__main__":
    main()
