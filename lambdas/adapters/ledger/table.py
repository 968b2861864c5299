"""One merchant's items in the ledger table: the key layout every family shares, and the consistent reads they
make. Item layout comes from ``lambdas.storage_schema``; every key a ``LedgerTable`` reads names its merchant."""

from collections.abc import Iterator
from typing import Any

from lambdas.storage_schema import BY_MERCHANT, LEDGER, Partition, from_item, to_item

PK = LEDGER.partition_key
if LEDGER.sort_key is None:
    raise TypeError("the ledger's items are keyed by partition and sort key")
SK = LEDGER.sort_key


def key_item(pk: str, sk: str) -> dict[str, Any]:
    """An item's key, as DynamoDB's low-level API takes it."""
    return to_item({PK: pk, SK: sk})


class LedgerTable:
    """The client, the table and the merchant that the family stores share."""

    def __init__(self, client: Any, name: str, merchant: str, page_size: int | None = None) -> None:
        self.client = client
        self.name = name
        self.merchant = merchant
        self.page_size = page_size  # items per query page (None: DynamoDB's 1 MB pages)

    def key(self, partition: Partition, identifier: str) -> str:
        return partition.key(self.merchant, identifier)

    def identifier(self, partition: Partition, values: dict[str, Any]) -> str:
        """The identifier an item's partition key names (``key``'s inverse), such as a payment's id."""
        return str(values[PK]).removeprefix(self.key(partition, ""))

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.name, Key=key_item(pk, sk), ConsistentRead=True)
        return from_item(item["Item"]) if "Item" in item else None

    def get_together(self, keys: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """Items by (partition, sort) key, consistently read in one ``BatchGetItem``; a key that it leaves
        unprocessed (as DynamoDB may under load) is read on its own."""
        answer = self.client.batch_get_item(
            RequestItems={self.name: {"Keys": [key_item(pk, sk) for pk, sk in keys], "ConsistentRead": True}}
        )
        found = {(v[PK], v[SK]): v for v in map(from_item, answer["Responses"].get(self.name, []))}
        left = answer.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
        unprocessed = {(v[PK], v[SK]) for v in map(from_item, left)}
        return [self.get(*key) if key in unprocessed else found.get(key) for key in keys]

    def partition(self, pk: str, **query: Any) -> Iterator[dict[str, Any]]:
        """Every item of a partition, consistently read, page by page (``query``: more of the Query's parameters)."""
        pages = self.client.get_paginator("query").paginate(
            TableName=self.name,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": PK},
            ExpressionAttributeValues=to_item({":pk": pk}),
            ConsistentRead=True,
            **query,
        )
        return (from_item(item) for page in pages for item in page["Items"])


def listing_query(partition: str, after: str | None) -> dict[str, Any]:
    """A Query's parameters for the by_merchant index's ``partition``, newest first, after the listing key ``after``
    (None: from the newest): what GET /events and GET /settlements page through."""
    condition, values = "#m = :m", {":m": partition}
    if after is not None:
        condition += " AND #k < :cursor"
        values[":cursor"] = after
    return {
        "IndexName": BY_MERCHANT.name,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": {"#m": BY_MERCHANT.partition_key} | ({"#k": BY_MERCHANT.sort_key} if after else {}),
        "ExpressionAttributeValues": to_item(values),
        "ScanIndexForward": False,
    }
