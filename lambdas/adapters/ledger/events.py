"""A merchant's events (``lambdas.domain.events``), one item each, put in the transaction of the change it tells of.

An event's item keeps the payment as it stood (its stored values, the masked card only, never its metadata: that
stays sealed in the payment's item, and is opened and attached when the event is read), and a refund event's refund;
a settlement event's item keeps the merchant's share with its mismatches instead (plain values, no payment).
It carries ``expires_at`` (the table's TTL removes it after ``EVENT_RETENTION``), the by_merchant index's
attributes under a partition of its own (``GET /events``, newest first) and the by_due index's (``due_fields``):
delivery finds it there, and takes it out once every endpoint has it."""

from datetime import datetime
from typing import Any

from lambdas.adapters.dynamo import DynamoUnitOfWork, put_new
from lambdas.adapters.ledger.payments import (
    PAYMENT_SK,
    DynamoPaymentRecords,
    payment_of,
    payment_values,
    refund_of,
    refund_values,
)
from lambdas.adapters.ledger.settlements import mismatch_of, mismatch_values
from lambdas.adapters.ledger.table import PK, SK, LedgerTable, listing_query
from lambdas.domain.events import Event, EventType
from lambdas.domain.settlements import Share
from lambdas.domain.timestamps import iso, parse_iso
from lambdas.storage_schema import BY_DUE, BY_MERCHANT, LEDGER, Partition, from_item

EVENT_SK = "EVENT"
BATCH_KEYS = 100  # the most keys one BatchGetItem reads
if LEDGER.ttl_attribute is None:
    raise TypeError("events expire: the ledger table needs its TTL attribute")
EXPIRES_AT = LEDGER.ttl_attribute


def event_key(merchant: str, event_id: str) -> tuple[str, str]:
    """The (partition, sort) key of ``merchant``'s event."""
    return Partition.EVENT.key(merchant, event_id), EVENT_SK


def due_partition(merchant: str) -> str:
    """The merchant's partition of the by_due index: its events still to deliver."""
    return f"DUE#{merchant}"


def due_fields(merchant: str, due_at: datetime) -> dict[str, Any]:
    """The by_due index's attributes of an event whose next delivery is due at ``due_at``."""
    return {BY_DUE.partition_key: due_partition(merchant), BY_DUE.sort_key: iso(due_at)}


def _listing_partition(merchant: str) -> str:
    """The merchant's partition of the by_merchant index for its events (its payments have another)."""
    return f"EVENTS#{merchant}"


def _listing_key(event: Event) -> str:
    return f"{iso(event.created_at)}#{event.id}"


class DynamoEventRecords:
    def __init__(self, table: LedgerTable, payments: DynamoPaymentRecords) -> None:
        self.table = table
        self.payments = payments

    def add_event(self, uow: DynamoUnitOfWork, event: Event) -> None:
        pk, sk = event_key(self.table.merchant, event.id)
        values = {
            PK: pk,
            SK: sk,
            "type": event.type.value,
            "created_at": iso(event.created_at),
            **_changed_values(event),
            EXPIRES_AT: int(event.expires_at.timestamp()),
            BY_MERCHANT.partition_key: _listing_partition(self.table.merchant),
            BY_MERCHANT.sort_key: _listing_key(event),
            **due_fields(self.table.merchant, event.created_at),
        }
        uow.add("event", put_new(self.table.name, values, PK))

    def get_event(self, event_id: str) -> Event | None:
        """The event, its payment's metadata attached: two ``GetItem`` (no ``BatchGetItem``, which needs a grant of
        its own), then the metadata opened (with the vault key, for its purpose)."""
        values = self.table.get(*event_key(self.table.merchant, event_id))
        if values is None:
            return None
        payment_id = values.get("payment_id")
        if payment_id is None:  # a settlement's: no payment, no metadata
            return _event_of(event_id, values, {})
        payment = self.table.get(self.table.key(Partition.PAYMENT, payment_id), PAYMENT_SK)
        return _event_of(event_id, values, {payment_id: self._metadata(payment_id, payment)})

    def list_events(
        self, limit: int, starting_after: Event | None, event_type: EventType | None
    ) -> tuple[list[Event], bool]:
        """Up to ``limit`` events (of ``event_type`` only, when given), newest first, after ``starting_after`` (an
        event of this merchant, by its place: time, then id); whether more follow. The index holds keys only, so the
        events are read by key, page by page, until ``limit`` of the type are found (or none are left)."""
        found: list[dict[str, Any]] = []
        cursor = _listing_key(starting_after) if starting_after is not None else None
        while len(found) <= limit:
            keys, cursor = self._listed_keys(limit + 1 - len(found) if event_type is None else BATCH_KEYS, cursor)
            items = [values for values in self._read(keys) if values is not None]  # expired ones may be gone
            found += [values for values in items if event_type is None or values["type"] == event_type.value]
            if cursor is None:
                break
        return self._with_metadata(found[:limit]), len(found) > limit

    def _listed_keys(self, count: int, after: str | None) -> tuple[list[tuple[str, str]], str | None]:
        """The keys of up to ``count`` events listed after ``after``, newest first, and the listing key of the last
        (None: no more follow)."""
        query = listing_query(_listing_partition(self.table.merchant), after)
        answer = self.table.client.query(TableName=self.table.name, Limit=count, **query)
        listed = [from_item(item) for item in answer["Items"]]
        keys = [(values[PK], values[SK]) for values in listed]
        more = len(listed) == count or "LastEvaluatedKey" in answer
        return keys, (listed[-1][BY_MERCHANT.sort_key] if listed and more else None)

    def _with_metadata(self, found: list[dict[str, Any]]) -> list[Event]:
        """The events of these items, each with its payment's metadata (read together, opened once per payment; a
        settlement's event has no payment)."""
        payment_ids = list(dict.fromkeys(values["payment_id"] for values in found if "payment_id" in values))
        payments = self._read([(self.table.key(Partition.PAYMENT, i), PAYMENT_SK) for i in payment_ids])
        metadata = {
            payment_id: self._metadata(payment_id, values)
            for payment_id, values in zip(payment_ids, payments, strict=True)
        }
        return [_event_of(self.table.identifier(Partition.EVENT, values), values, metadata) for values in found]

    def _metadata(self, payment_id: str, values: dict[str, Any] | None) -> dict[str, str]:
        return self.payments.metadata_of(payment_id, values) if values else {}

    def _read(self, keys: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """Items by key, consistently read, ``BATCH_KEYS`` to a request."""
        return [
            values
            for start in range(0, len(keys), BATCH_KEYS)
            for values in self.table.get_together(keys[start : start + BATCH_KEYS])
        ]


def _changed_values(event: Event) -> dict[str, Any]:
    """What the event's item keeps of what changed: the payment (and refund), or the settlement share."""
    if event.settlement is not None:
        return {"settlement": _share_values(event.settlement)}
    if event.payment is None:
        raise ValueError(f"event {event.id} tells of no payment and no settlement")
    return {
        "payment_id": event.payment.id,
        "payment": {k: v for k, v in payment_values(event.payment).items() if v is not None},
        "refund": {k: v for k, v in refund_values(event.refund).items() if v is not None} if event.refund else None,
    }


def _event_of(event_id: str, values: dict[str, Any], metadata: dict[str, dict[str, str]]) -> Event:
    event_type, created_at = EventType(values["type"]), parse_iso(values["created_at"])
    if "settlement" in values:
        return Event(event_id, event_type, created_at, None, settlement=_share_of(values["settlement"]))
    payment_id = values["payment_id"]
    refund = values.get("refund")
    return Event(
        id=event_id,
        type=event_type,
        created_at=created_at,
        payment=payment_of(payment_id, values["payment"], metadata.get(payment_id)),
        refund=refund_of(payment_id, refund) if refund else None,
    )


def _share_values(share: Share) -> dict[str, Any]:
    """A merchant's share of a settlement, with its mismatches, as plain values (for ``_share_of``)."""
    return {
        "settlement_id": share.settlement_id,
        "currency": share.currency,
        "created_at": iso(share.created_at),
        "gross": share.gross,
        "fees": share.fees,
        "lines": share.lines,
        "mismatch_count": share.mismatch_count,
        "mismatches": [
            {k: v for k, v in mismatch_values(mismatch).items() if v is not None} for mismatch in share.mismatches
        ],
        "complete": share.complete,
    }


def _share_of(values: dict[str, Any]) -> Share:
    return Share(
        settlement_id=values["settlement_id"],
        currency=values["currency"],
        created_at=parse_iso(values["created_at"]),
        gross=int(values["gross"]),
        fees=int(values["fees"]),
        lines=int(values["lines"]),
        mismatch_count=int(values["mismatch_count"]),
        mismatches=tuple(mismatch_of(mismatch) for mismatch in values["mismatches"]),
        complete=bool(values["complete"]),
    )
