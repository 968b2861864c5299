"""The velocity rule's counter: attempts per card fingerprint per UTC hour, one
item per card and hour in the idempotency table (short-lived items, TTL).

The count is taken in the transaction that records the payment, with a
condition on the count, so concurrent payments can never pass the limit."""

from datetime import UTC, datetime, timedelta
from typing import Any

from lambdas.adapters.dynamo import DynamoUnitOfWork
from lambdas.storage_schema import IDEMPOTENCY, to_item

WINDOW = timedelta(hours=1)


def _window_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class DynamoVelocityCounter:
    def __init__(self, client: Any, table: str, merchant: str) -> None:
        self.client = client
        self.table = table
        self.merchant = merchant  # each merchant counts its own attempts, against its own limit

    def count(self, uow: DynamoUnitOfWork, fingerprint: str, now: datetime, limit: int) -> None:
        start = _window_start(now)
        key = f"velocity#{self.merchant}#{fingerprint}#{start:%Y-%m-%dT%H}"
        uow.add(
            "velocity",
            {
                "Update": {
                    "TableName": self.table,
                    "Key": to_item({IDEMPOTENCY.partition_key: key}),
                    "UpdateExpression": "ADD #count :one SET #expiration = :expiration",
                    "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
                    "ExpressionAttributeNames": {"#count": "attempts", "#expiration": IDEMPOTENCY.ttl_attribute},
                    "ExpressionAttributeValues": to_item(
                        {":one": 1, ":limit": limit, ":expiration": int((start + 2 * WINDOW).timestamp())}
                    ),
                }
            },
        )
