"""The operator's record of the gateway's settlements in the ledger table (``lambdas.ports.SettlementImports``).

Every settlement's import is an item of one partition (``GATEWAY#sparkle#settlements``), sorted by its ``created``
(zero-padded) then id: the settlement as the gateway gave it, when it was first seen, the last line imported and
whether it is done. The watermark (up to which every settlement is done) is an item of the same partition, only
ever moved up. The lines no merchant knows
are items of the settlement's own partition (``GATEWAY#sparkle#<settlement id>``), each put once."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from lambdas.adapters.ledger.settlements import mismatch_of, mismatch_values
from lambdas.adapters.ledger.table import PK, SK, key_item
from lambdas.domain.settlements import Mismatch, Settlement
from lambdas.domain.timestamps import iso, parse_iso
from lambdas.ports import SettlementImport
from lambdas.storage_schema import Partition, from_item, to_item

GATEWAY = "sparkle"  # the gateway whose settlements these are
SETTLEMENTS = "settlements"  # the identifier of the partition of their imports
WATERMARK_SK = "WATERMARK"
UNKNOWN_SK = "UNKNOWN#"
ABOVE_DIGITS = ":"  # sorts after every sort key that starts with a digit, and before WATERMARK_SK


def import_sk(created: int, settlement_id: str) -> str:
    return f"{created:012d}#{settlement_id}"


class DynamoSettlementImports:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table
        self.pk = Partition.GATEWAY.key(GATEWAY, SETTLEMENTS)
        self.created: dict[str, int] = {}  # settlement id -> its created, as begun or listed (its sort key)

    def watermark(self) -> int:
        values = self._get(self.pk, WATERMARK_SK)
        return int(values["created"]) if values else 0

    def begin(self, settlement: Settlement, now: datetime) -> SettlementImport:
        values = {
            PK: self.pk,
            SK: import_sk(settlement.created, settlement.id),
            **_settlement_values(settlement),
            "first_seen_at": iso(now),
            "done": False,
        }
        self._write("put_item", Item=to_item(values), ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": PK})  # fmt: skip
        kept = self._get(self.pk, import_sk(settlement.created, settlement.id))
        if kept is None:
            raise KeyError(settlement.id)
        return self._import_of(kept)

    def advance(self, settlement_id: str, after_line: str) -> None:
        written = self._write(
            "update_item",
            Key=key_item(self.pk, import_sk(self._created(settlement_id), settlement_id)),
            UpdateExpression="SET #after = :after",
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames={"#after": "after_line", "#pk": PK},
            ExpressionAttributeValues=to_item({":after": after_line}),
        )
        if not written:
            raise KeyError(settlement_id)

    def add_unknown(self, settlement_id: str, mismatch: Mismatch) -> bool:
        values = {
            PK: Partition.GATEWAY.key(GATEWAY, settlement_id),
            SK: f"{UNKNOWN_SK}{mismatch.gateway_line}",
            **mismatch_values(mismatch),
        }
        return self._write("put_item", Item=to_item(values), ConditionExpression="attribute_not_exists(#pk)",
                           ExpressionAttributeNames={"#pk": PK})  # fmt: skip

    def finish(self, settlement: Settlement) -> None:
        written = self._write(
            "update_item",
            Key=key_item(self.pk, import_sk(settlement.created, settlement.id)),
            UpdateExpression="SET #done = :true",
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames={"#done": "done", "#pk": PK},
            ExpressionAttributeValues=to_item({":true": True}),
        )
        if not written:
            raise KeyError(settlement.id)

    def raise_watermark(self, created: int) -> None:
        """A put only while the watermark is lower (or none)."""
        self._write(
            "put_item",
            Item=to_item({PK: self.pk, SK: WATERMARK_SK, "created": created}),
            ConditionExpression="attribute_not_exists(#pk) OR #created < :created",
            ExpressionAttributeNames={"#pk": PK, "#created": "created"},
            ExpressionAttributeValues=to_item({":created": created}),
        )

    def imports(self, created_from: int, created_to: int) -> list[SettlementImport]:
        """By sort key: from ``created_from`` up to (not including) the first of ``created_to + 1``."""
        found = self._query(
            "#pk = :pk AND #sk BETWEEN :from AND :to",
            {":from": f"{created_from:012d}", ":to": f"{created_to + 1:012d}"},
        )
        return [self._import_of(values) for values in found]

    def newest_done(self, currency: str) -> Settlement | None:
        found = self._query(
            "#pk = :pk AND #sk < :above",
            {":above": ABOVE_DIGITS, ":true": True, ":currency": currency},
            ScanIndexForward=False,
            FilterExpression="#done = :true AND #currency = :currency",
        )
        return next((_settlement_of(values) for values in found), None)

    def _created(self, settlement_id: str) -> int:
        """The settlement's ``created`` (its sort key's start): as begun or listed here, else found by its id."""
        if settlement_id not in self.created:
            found = self._query("#pk = :pk", {":id": settlement_id}, FilterExpression="#id = :id")
            values = next(found, None)
            if values is None:
                raise KeyError(settlement_id)
            self.created[settlement_id] = int(values["created"])
        return self.created[settlement_id]

    def _import_of(self, values: dict[str, Any]) -> SettlementImport:
        settlement = _settlement_of(values)
        self.created[settlement.id] = settlement.created
        return SettlementImport(
            settlement,
            parse_iso(values["first_seen_at"]),
            values.get("after_line"),
            bool(values.get("done")),
            tuple(self._unknown(settlement.id)),
        )

    def _unknown(self, settlement_id: str) -> Iterator[Mismatch]:
        pk = Partition.GATEWAY.key(GATEWAY, settlement_id)
        found = self._query("#pk = :pk AND begins_with(#sk, :unknown)", {":pk": pk, ":unknown": UNKNOWN_SK})
        return map(mismatch_of, found)

    def _query(self, condition: str, values: dict[str, Any], **query: Any) -> Iterator[dict[str, Any]]:
        """Every item the query finds, consistently read, page by page; ``:pk`` is the imports' partition unless
        ``values`` names another."""
        expression = condition + " " + query.get("FilterExpression", "")
        names = {"#pk": PK, "#sk": SK, "#done": "done", "#currency": "currency", "#id": "id"}
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={name: attribute for name, attribute in names.items() if name in expression},
            ExpressionAttributeValues=to_item({":pk": self.pk} | values),
            ConsistentRead=True,
            **query,
        )
        return (from_item(item) for page in pages for item in page["Items"])

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table, Key=key_item(pk, sk), ConsistentRead=True)
        return from_item(item["Item"]) if "Item" in item else None

    def _write(self, operation: str, **request: Any) -> bool:
        """A conditional write: False when its condition failed."""
        try:
            getattr(self.client, operation)(TableName=self.table, **request)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _settlement_values(settlement: Settlement) -> dict[str, Any]:
    return {
        "id": settlement.id,
        "currency": settlement.currency,
        "created": settlement.created,
        "gross": settlement.gross,
        "fees": settlement.fees,
        "net": settlement.net,
        "lines": settlement.lines,
    }


def _settlement_of(values: dict[str, Any]) -> Settlement:
    return Settlement(
        values["id"],
        values["currency"],
        int(values["created"]),
        int(values["gross"]),
        int(values["fees"]),
        int(values["net"]),
        int(values["lines"]),
    )
