"""DynamoDB helpers: typed values to and from low-level items and transaction parts."""

import re
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: dict[str, Any]) -> dict:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def put_new(table: str, values: dict, key_attribute: str) -> dict:
    """A transaction part that adds an item and fails if one with its key exists."""
    return {
        "Put": {
            "TableName": table,
            "Item": to_item(values),
            "ConditionExpression": "attribute_not_exists(#key)",
            "ExpressionAttributeNames": {"#key": key_attribute},
        }
    }


def update(table: str, key: dict, fields: dict[str, Any], remove=(), condition: str = "", condition_values=None):
    """A transaction part: ``SET`` the fields (``REMOVE`` others) if ``condition`` holds.

    Conditions name attributes as ``#name`` and values as ``:name``; every field
    is available as ``#field``.
    """
    condition_values = condition_values or {}
    names = {f"#{k}": k for k in (*fields, *remove, *_names_in(condition))}
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in fields)
    if remove:
        expression += " REMOVE " + ", ".join(f"#{k}" for k in remove)
    operation = {
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
