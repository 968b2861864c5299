"""DynamoDB helpers: typed values to and from low-level items and transaction parts."""

import random
import re
import time
from collections.abc import Callable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from lambdas.ports import LostRace

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def put_new(table: str, values: dict[str, Any], key_attribute: str) -> dict[str, Any]:
    """A transaction part that adds an item and fails if one with its key exists."""
    return {
        "Put": {
            "TableName": table,
            "Item": to_item(values),
            "ConditionExpression": "attribute_not_exists(#key)",
            "ExpressionAttributeNames": {"#key": key_attribute},
        }
    }


def update(
    table: str,
    key: dict[str, Any],
    fields: dict[str, Any],
    remove: tuple[str, ...] = (),
    condition: str = "",
    condition_values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A transaction part: ``SET`` the fields (``REMOVE`` others) if ``condition`` holds.

    Conditions name attributes as ``#name`` and values as ``:name``; every field
    is available as ``#field``.
    """
    condition_values = condition_values or {}
    names = {f"#{k}": k for k in (*fields, *remove, *_names_in(condition))}
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in fields)
    if remove:
        expression += " REMOVE " + ", ".join(f"#{k}" for k in remove)
    operation: dict[str, Any] = {
        "TableName": table,
        "Key": to_item(key),
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_item({**{f":{k}": v for k, v in fields.items()}, **condition_values}),
    }
    if condition:
        operation["ConditionExpression"] = condition
    return {"Update": operation}


def _names_in(condition: str) -> list[str]:
    return re.findall(r"#(\w+)", condition)


CONFLICT_RETRIES = 4  # DynamoDB cancels a transaction that meets another on the same item
Decoder = Callable[[dict[str, Any] | None], Any]


class DynamoUnitOfWork:
    """Transaction parts from any of the stores, written by one ``TransactWriteItems``.

    Every conditional part asks for the item it found when its condition fails, so a lost race
    costs no extra read: ``LostRace.conflicts`` maps each failed part's label to that item,
    decoded by the store that made the part."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.parts: list[tuple[str, dict[str, Any], Decoder]] = []

    def add(self, label: str, part: dict[str, Any], decode: Decoder = lambda item: item) -> None:
        operation = next(iter(part.values()))
        if "ConditionExpression" in operation:
            operation["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        self.parts.append((label, part, decode))

    def commit(self) -> None:
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                self.client.transact_write_items(TransactItems=[part for _, part, _ in self.parts])
                return
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = error.response.get("CancellationReasons") or []
                conflicts = {
                    label: decode(from_item(reason["Item"]) if reason.get("Item") else None)
                    for (label, _, decode), reason in zip(self.parts, reasons, strict=False)
                    if reason.get("Code") == "ConditionalCheckFailed"
                }
                if conflicts:
                    raise LostRace(conflicts) from None
                if attempt == CONFLICT_RETRIES or not any(r.get("Code") == "TransactionConflict" for r in reasons):
                    raise
                time.sleep(random.uniform(0, 0.05 * 2**attempt))  # another transaction held an item: try again
