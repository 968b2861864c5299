"""The merchant's side of settlements in the ledger table (``lambdas.ports.SettlementRecords``).

Each expected movement is an item of its own (``SETTLEMENT#<merchant>#<reference>``, sort key ``EXPECTED``), put
once and never removed: the line that settles it is set on it once, while no line did; the first mismatched line
that names it, on no condition; the settlement a ``not_settled`` was reported in, once, while none of the three is
set. The cursor is one item, moved on the condition of its version. The merchant's share of a settlement is a
partition (``SETTLEMENT#<merchant>#<settlement id>``): the share's item (its totals, moved with
``ADD`` in the transaction that puts a line, so a line counts once), one item per line, put once, and one per
``not_settled`` mismatch. A completed share enters the by_merchant index under a partition of its own (``GET
/settlements``, newest first). A matched line's entries go on their chain in the same transaction."""

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from lambdas.adapters.dynamo import DynamoUnitOfWork, put_new
from lambdas.adapters.ledger.chains import DynamoChainRecords, chain_position, entry_of
from lambdas.adapters.ledger.table import PK, SK, LedgerTable, key_item, listing_query
from lambdas.domain.payments import Entry
from lambdas.domain.settlements import (
    Expected,
    Mismatch,
    MismatchReason,
    Settlement,
    Share,
    ShareLine,
    line_key,
)
from lambdas.domain.timestamps import iso, parse_iso
from lambdas.ports import SettlementCursor
from lambdas.storage_schema import BY_CHAIN, BY_MERCHANT, Partition, from_item, to_item

EXPECTED_SK = "EXPECTED"
CURSOR = "cursor"  # the identifier of the merchant's cursor item
CURSOR_SK = "CURSOR"
SHARE_SK = "SHARE"
LINE_SK = "LINE#"
MISMATCH_SK = "MISMATCH#"  # a not_settled mismatch, by its reference
BATCH_KEYS = 100  # the most keys one BatchGetItem reads


def listing_partition(merchant: str) -> str:
    """The merchant's partition of the by_merchant index for its complete shares (payments and events have others)."""
    return f"SETTLEMENTS#{merchant}"


def _listing_key(created_at: datetime, settlement_id: str) -> str:
    return f"{iso(created_at)}#{settlement_id}"


class DynamoSettlementRecords:
    def __init__(self, table: LedgerTable, chains: DynamoChainRecords) -> None:
        self.table = table
        self.chains = chains

    # -- the merchant's chains, and how far the import read them ---------------------------------

    def chain_entries(self, chain: int, after: int, limit: int) -> list[Entry]:
        """From the by_chain index, in sequence: its prefix without a gap (a later entry the index already shows
        waits until the one before it shows too)."""
        answer = self.table.client.query(
            TableName=self.table.name,
            IndexName=BY_CHAIN.name,
            KeyConditionExpression="#chain = :chain AND #seq > :after",
            ExpressionAttributeNames={"#chain": BY_CHAIN.partition_key, "#seq": BY_CHAIN.sort_key},
            ExpressionAttributeValues=to_item(
                {":chain": self.table.key(Partition.CHAIN, str(chain)), ":after": chain_position(after)}
            ),
            Limit=limit,
        )
        entries: list[Entry] = []
        for entry in map(entry_of, map(from_item, answer["Items"])):
            if entry.sequence != after + len(entries) + 1:
                break
            entries.append(entry)
        return entries

    def _cursor_key(self) -> tuple[str, str]:
        return self.table.key(Partition.SETTLEMENT, CURSOR), CURSOR_SK

    def settlement_cursor(self) -> SettlementCursor:
        values = self.table.get(*self._cursor_key())
        if values is None:
            return SettlementCursor({}, {})
        return SettlementCursor(_positions(values["walked"]), _positions(values["checked"]), int(values["version"]))

    def move_settlement_cursor(self, before: SettlementCursor, after: SettlementCursor) -> bool:
        pk, sk = self._cursor_key()
        values = {
            PK: pk,
            SK: sk,
            "walked": {str(chain): sequence for chain, sequence in after.walked.items()},
            "checked": {str(chain): sequence for chain, sequence in after.checked.items()},
            "version": before.version + 1,
        }
        if before.version == 0:
            condition, names, expected = "attribute_not_exists(#pk)", {"#pk": PK}, {}
        else:
            condition, names, expected = "#version = :version", {"#version": "version"}, {":version": before.version}
        put = {"Item": to_item(values), "ConditionExpression": condition, "ExpressionAttributeNames": names}
        if expected:
            put["ExpressionAttributeValues"] = to_item(expected)
        return _unless_condition_fails(lambda: self.table.client.put_item(TableName=self.table.name, **put))

    # -- expected movements ------------------------------------------------------------------------

    def _expected_key(self, reference: str) -> tuple[str, str]:
        return self.table.key(Partition.SETTLEMENT, reference), EXPECTED_SK

    def add_expected(self, expected: list[Expected]) -> None:
        """One conditional put each: one kept already stays as it is (maybe settled meanwhile)."""
        for movement in expected:
            pk, sk = self._expected_key(movement.reference)
            values = {
                PK: pk,
                SK: sk,
                "payment_id": movement.payment_id,
                "refund_id": movement.refund_id,
                "amount": movement.amount,
                "currency": movement.currency,
                "succeeded_at": iso(movement.succeeded_at),
                "gateway_id": movement.gateway_id,
                "settled_by": movement.settled_by,
                "listed_by": movement.listed_by,
            }
            put = put_new(self.table.name, values, PK)["Put"]
            _unless_condition_fails(lambda put=put: self.table.client.put_item(**put))

    def expected(self, references: list[str]) -> dict[str, Expected]:
        keys = [self._expected_key(reference) for reference in dict.fromkeys(references)]
        found = [
            values
            for start in range(0, len(keys), BATCH_KEYS)
            for values in self.table.get_together(keys[start : start + BATCH_KEYS])
            if values is not None
        ]
        return {movement.reference: movement for movement in map(self._expected_of, found)}

    def _expected_of(self, values: dict[str, Any]) -> Expected:
        return Expected(
            self.table.identifier(Partition.SETTLEMENT, values),
            values["payment_id"],
            values.get("refund_id"),
            int(values["amount"]),
            values["currency"],
            parse_iso(values["succeeded_at"]),
            gateway_id=values.get("gateway_id"),
            settled_by=values.get("settled_by"),
            listed_by=values.get("listed_by"),
        )

    def _found_expected(self, values: dict[str, Any] | None) -> Expected | None:
        return self._expected_of(values) if values else None

    def _expected_update(self, reference: str, expression: str, value: str, condition: str | None) -> dict[str, Any]:
        """A part updating the expected movement with ``expression`` (``:value``), on ``condition`` when given."""
        update = {
            "TableName": self.table.name,
            "Key": key_item(*self._expected_key(reference)),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": to_item({":value": value}),
        }
        used = re.findall(r"#\w+", expression + (condition or ""))
        update["ExpressionAttributeNames"] = {name: _EXPECTED_NAMES[name] for name in dict.fromkeys(used)}
        if condition is not None:
            update["ConditionExpression"] = condition
        return {"Update": update}

    # -- shares ----------------------------------------------------------------------------------------

    def _share_pk(self, settlement_id: str) -> str:
        return self.table.key(Partition.SETTLEMENT, settlement_id)

    def add_share_line(
        self,
        uow: DynamoUnitOfWork,
        settlement: Settlement,
        line: ShareLine,
        names: Expected | None,
        entries: list[Entry],
    ) -> None:
        """A mismatched line's mark on the movement it names is unconditional: ``names`` was read kept, and a kept
        movement is never removed, so the update never makes an item."""
        pk = self._share_pk(settlement.id)
        values = {PK: pk, SK: f"{LINE_SK}{line.line_id}", "reference": line.reference, "amount": line.amount}
        values |= {"fee": line.fee, **mismatch_values(line.mismatch)}
        uow.add("line", put_new(self.table.name, values, PK), self._found_line)
        totals = {":gross": line.amount, ":fee": line.fee, ":one": 1, ":mismatched": int(line.mismatch is not None)}
        uow.add(
            "share",
            self._share_update(
                settlement,
                "SET #complete = if_not_exists(#complete, :false)",
                "ADD #gross :gross, #fees :fee, #lines :one, #mismatch_count :mismatched",
                totals | {":false": False},
            ),
        )
        key = line_key(settlement.id, line.line_id)
        if names is not None and line.mismatch is None:
            settle = self._expected_update(names.reference, "SET #settled_by = :value", key, SETTLEABLE)
            uow.add("expected", settle, self._found_expected)
        elif names is not None:
            listing = "SET #listed_by = if_not_exists(#listed_by, :value)"
            uow.add("expected", self._expected_update(names.reference, listing, key, None), self._found_expected)
        self.chains.append(uow, entries)

    def add_not_settled(
        self, uow: DynamoUnitOfWork, settlement: Settlement, expected: Expected, mismatch: Mismatch
    ) -> None:
        mark = self._expected_update(expected.reference, "SET #not_settled_in = :value", settlement.id, UNLISTED)
        uow.add("expected", mark, self._found_expected)
        pk = self._share_pk(settlement.id)
        values = {PK: pk, SK: f"{MISMATCH_SK}{expected.reference}", **mismatch_values(mismatch)}
        uow.add("mismatch", {"Put": {"TableName": self.table.name, "Item": to_item(values)}})
        listing = {":partition": listing_partition(self.table.merchant)}
        listing[":key"] = _listing_key(settlement.created_at, settlement.id)
        uow.add(
            "share",
            self._share_update(
                settlement,
                "SET #complete = if_not_exists(#complete, :true), #listing_pk = if_not_exists(#listing_pk, :partition),"
                " #listing_key = if_not_exists(#listing_key, :key)",
                "ADD #mismatch_count :one",
                listing | {":true": True, ":one": 1},
            ),
        )

    def complete_share(self, uow: DynamoUnitOfWork, share: Share) -> None:
        expression = "SET #complete = :true, #listing_pk = :partition, #listing_key = :key,"
        expression += (
            " #currency = if_not_exists(#currency, :currency), #created_at = if_not_exists(#created_at, :created_at)"
        )
        condition = "attribute_not_exists(#complete) OR #complete = :false"
        update = {
            "TableName": self.table.name,
            "Key": key_item(self._share_pk(share.settlement_id), SHARE_SK),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": _share_names(expression + condition),
            "ExpressionAttributeValues": to_item(
                {
                    ":true": True,
                    ":false": False,
                    ":partition": listing_partition(self.table.merchant),
                    ":key": _listing_key(share.created_at, share.settlement_id),
                    ":currency": share.currency,
                    ":created_at": iso(share.created_at),
                }
            ),
        }
        uow.add("share", {"Update": update}, lambda values: _share_of(share.settlement_id, values) if values else None)

    def _share_update(self, settlement: Settlement, sets: str, adds: str, values: dict[str, Any]) -> dict[str, Any]:
        """An unconditional part on the share's item, made with the settlement's currency and time when it has none."""
        expression = f"{sets}, #currency = if_not_exists(#currency, :currency),"
        expression += f" #created_at = if_not_exists(#created_at, :created_at) {adds}"
        update = {
            "TableName": self.table.name,
            "Key": key_item(self._share_pk(settlement.id), SHARE_SK),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": _share_names(expression),
            "ExpressionAttributeValues": to_item(
                values | {":currency": settlement.currency, ":created_at": iso(settlement.created_at)}
            ),
        }
        return {"Update": update}

    def _found_line(self, values: dict[str, Any] | None) -> ShareLine | None:
        return _line_of(values) if values else None

    def get_share(self, settlement_id: str) -> Share | None:
        """One consistent query of the share's partition: the share, its lines' mismatches (by line id), then its
        ``not_settled`` ones (by reference)."""
        share: Share | None = None
        mismatches: list[Mismatch] = []
        for values in self.table.partition(self._share_pk(settlement_id)):
            sk = str(values[SK])
            if sk == SHARE_SK:
                share = _share_of(settlement_id, values)
            elif sk.startswith((LINE_SK, MISMATCH_SK)) and "reason" in values:
                mismatches.append(mismatch_of(values))
        if share is None:
            return None
        return replace(share, mismatches=tuple(mismatches))

    def list_shares(self, limit: int, starting_after: Share | None) -> tuple[list[Share], bool]:
        """The index holds keys only: the shares are read by key, and only complete ones kept, page by page until
        ``limit`` and one more are found (or none are left)."""
        found: list[Share] = []
        after = _listing_key(starting_after.created_at, starting_after.settlement_id) if starting_after else None
        for keys in self._listed_keys(after, min(limit + 1, BATCH_KEYS)):
            read = [values for values in self._read(keys) if values is not None]
            shares = [_share_of(self.table.identifier(Partition.SETTLEMENT, values), values) for values in read]
            found += [share for share in shares if share.complete]
            if len(found) > limit:
                break
        return found[:limit], len(found) > limit

    def _listed_keys(self, after: str | None, page_size: int) -> Iterator[list[tuple[str, str]]]:
        """The keys of the shares listed after ``after``, newest first, ``page_size`` at a time."""
        pages = self.table.client.get_paginator("query").paginate(
            TableName=self.table.name,
            PaginationConfig={"PageSize": page_size},
            **listing_query(listing_partition(self.table.merchant), after),
        )
        for page in pages:
            yield [(values[PK], values[SK]) for values in map(from_item, page["Items"])]

    def _read(self, keys: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
        return self.table.get_together(keys) if keys else []


_EXPECTED_NAMES = {
    "#pk": PK,
    "#settled_by": "settled_by",
    "#listed_by": "listed_by",
    "#not_settled_in": "not_settled_in",
}
SETTLEABLE = "attribute_exists(#pk) AND attribute_not_exists(#settled_by)"  # kept, and settled by no line
# kept, settled and listed by no line, and reported in no settlement as not settled
UNLISTED = f"{SETTLEABLE} AND attribute_not_exists(#listed_by) AND attribute_not_exists(#not_settled_in)"

_SHARE_NAMES = {
    "#complete": "complete",
    "#currency": "currency",
    "#created_at": "created_at",
    "#gross": "gross",
    "#fees": "fees",
    "#lines": "lines",
    "#mismatch_count": "mismatch_count",
    "#listing_pk": BY_MERCHANT.partition_key,
    "#listing_key": BY_MERCHANT.sort_key,
}


def _share_names(expression: str) -> dict[str, str]:
    """The names of the share's attributes that ``expression`` uses (DynamoDB refuses one it does not)."""
    return {name: _SHARE_NAMES[name] for name in dict.fromkeys(re.findall(r"#\w+", expression))}


def _unless_condition_fails(write: Any) -> bool:
    """Make the conditional write: False when its condition failed."""
    try:
        write()
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _positions(stored: dict[str, Any]) -> dict[int, int]:
    return {int(chain): int(sequence) for chain, sequence in stored.items()}


def mismatch_values(mismatch: Mismatch | None) -> dict[str, Any]:
    """A mismatch as an item stores it (nothing: none)."""
    if mismatch is None:
        return {}
    return {
        "reason": mismatch.reason.value,
        "mismatch_reference": mismatch.reference,
        "gateway_line": mismatch.gateway_line,
        "ledger_amount": mismatch.ledger_amount,
        "gateway_amount": mismatch.gateway_amount,
        "ledger_currency": mismatch.ledger_currency,
        "gateway_currency": mismatch.gateway_currency,
    }


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def mismatch_of(values: dict[str, Any]) -> Mismatch:
    return Mismatch(
        values.get("mismatch_reference"),
        values.get("gateway_line"),
        MismatchReason(values["reason"]),
        _optional_int(values.get("ledger_amount")),
        _optional_int(values.get("gateway_amount")),
        values.get("ledger_currency"),
        values.get("gateway_currency"),
    )


def _line_of(values: dict[str, Any]) -> ShareLine:
    return ShareLine(
        str(values[SK]).removeprefix(LINE_SK),
        values.get("reference"),
        int(values["amount"]),
        int(values["fee"]),
        mismatch_of(values) if "reason" in values else None,
    )


def _share_of(settlement_id: str, values: dict[str, Any]) -> Share:
    return Share(
        settlement_id,
        values["currency"],
        parse_iso(values["created_at"]),
        int(values.get("gross", 0)),
        int(values.get("fees", 0)),
        int(values.get("lines", 0)),
        int(values.get("mismatch_count", 0)),
        complete=bool(values.get("complete")),
    )
