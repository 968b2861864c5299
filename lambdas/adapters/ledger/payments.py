"""Payments and their refunds, in one partition per payment, and the pending index that reconciliation reads.

A payment or refund leaves ``pending`` only once (a condition on its status), so two writers cannot both settle
it. An authorisation sits in the index's authorisations partition (reconciliation cancels the expired); a capture or
cancel is claimed on it (a condition that none was), which moves it to the pending partition until it is settled.
A refund reserves its amount with a condition on what is left (``refundable_left``), an arithmetic update that needs
no read-modify-write: it fails only when too little is left (or when what is left changed under a stale check).
Settling writes the entries it books in the same transaction (``DynamoChainRecords.append``)."""

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from lambdas.adapters.dynamo import DynamoUnitOfWork, put_new, update
from lambdas.adapters.envelope import EnvelopeCipher, Sealed
from lambdas.adapters.ledger.chains import DynamoChainRecords
from lambdas.adapters.ledger.listing import listing_fields
from lambdas.adapters.ledger.table import PK, SK, LedgerTable
from lambdas.adapters.ledger.tokens import card_of, card_values
from lambdas.domain.chains import chain_of
from lambdas.domain.payments import (
    Action,
    ActionKind,
    CancellationReason,
    Entry,
    Payment,
    Refund,
    RefundStatus,
    Status,
)
from lambdas.domain.timestamps import iso, parse_iso
from lambdas.ports import PendingItem
from lambdas.storage_schema import BY_STATUS, Partition, from_item, to_item

PAYMENT_SK = "PAYMENT"
REFUND_SK = "REFUND#"

# The merchant's partitions of the pending index. Every payment enters it and leaves it (two index writes of the
# item's size), and its sort key, the creation time, only grows, so DynamoDB cannot split one partition for heat:
# one partition per merchant (1,000 writes/s) would cap a merchant near 500 payments/s. Eight take 4,000/s.
PENDING_SHARDS = 8


def pending_partition(merchant: str, payment_id: str) -> str:
    """The partition of the pending index that holds a payment (and its refunds) while pending: one of the
    merchant's ``PENDING_SHARDS``, by the payment's chain (reconciliation reads them merchant by merchant)."""
    return _pending_shard(merchant, chain_of(payment_id) % PENDING_SHARDS)


def _pending_shard(merchant: str, shard: int) -> str:
    """Shard 0 keeps the key of the single partition used before shards: what was pending then is still found."""
    return f"{Status.PENDING.value}#{merchant}" + (f"#{shard}" if shard else "")


def authorizations_partition(merchant: str) -> str:
    """The partition of the pending index that holds the merchant's authorisations while they require capture."""
    return f"{Status.REQUIRES_CAPTURE.value}#{merchant}"


class DynamoPaymentRecords:
    def __init__(self, table: LedgerTable, metadata_cipher: EnvelopeCipher, chains: DynamoChainRecords) -> None:
        self.table = table
        self.metadata_cipher = metadata_cipher
        self.chains = chains

    def get_payment(self, payment_id: str, with_metadata: bool = True, to_book: bool = False) -> Payment | None:
        """The payment; its metadata is decrypted only when asked for (it takes the vault key). ``to_book``: the head
        of its chain is read in the same round trip, for the entries booked next."""
        payment_key = (self.table.key(Partition.PAYMENT, payment_id), PAYMENT_SK)
        if to_book:
            chain = chain_of(payment_id)
            values, head = self.table.get_together([payment_key, self.chains.head_key(chain)])
            self.chains.read_ahead(chain, head)
        else:
            values = self.table.get(*payment_key)
        if values is None:
            return None
        return self._payment(values, self.metadata_of(payment_id, values) if with_metadata else {})

    def metadata_of(self, payment_id: str, values: dict[str, Any]) -> dict[str, str]:
        """The metadata a payment's item holds sealed, opened (it takes the vault key)."""
        if "metadata" not in values:
            return {}
        return dict(json.loads(self.metadata_cipher.open(Sealed.from_item(values["metadata"]), payment_id)))

    def _payment(self, values: dict[str, Any], metadata: dict[str, str] | None = None) -> Payment:
        return payment_of(self.table.identifier(Partition.PAYMENT, values), values, metadata)

    def _found_payment(self, values: dict[str, Any] | None) -> Payment | None:
        return self._payment(values) if values else None

    def get_refund(self, payment_id: str, refund_id: str) -> Refund | None:
        values = self.table.get(self.table.key(Partition.PAYMENT, payment_id), f"{REFUND_SK}{refund_id}")
        return refund_of(payment_id, values) if values else None

    def pending(self, created_before: datetime) -> Iterator[PendingItem]:
        """The merchant's pending payments and refunds (and claimed authorisations) created before
        ``created_before``: its shards are read at once (a listing then takes one query's time, as before shards),
        each page by page."""
        partitions = [_pending_shard(self.table.merchant, shard) for shard in range(PENDING_SHARDS)]
        with ThreadPoolExecutor(max_workers=PENDING_SHARDS) as pool:
            shards = pool.map(lambda partition: list(self._indexed(partition, created_before)), partitions)
            for items in shards:
                yield from items

    def authorizations(self, created_before: datetime) -> Iterator[PendingItem]:
        return self._indexed(authorizations_partition(self.table.merchant), created_before)

    def _indexed(self, partition: str, created_before: datetime) -> Iterator[PendingItem]:
        pages = self.table.client.get_paginator("query").paginate(
            TableName=self.table.name,
            IndexName=BY_STATUS.name,
            KeyConditionExpression="#status = :partition AND #at < :before",
            ExpressionAttributeNames={"#status": BY_STATUS.partition_key, "#at": BY_STATUS.sort_key},
            ExpressionAttributeValues=to_item({":partition": partition, ":before": iso(created_before)}),
            PaginationConfig={"PageSize": self.table.page_size} if self.table.page_size else {},
        )
        for page in pages:
            for item in page["Items"]:
                values = from_item(item)
                refund_id = values[SK].removeprefix(REFUND_SK) if values[SK].startswith(REFUND_SK) else None
                payment_id = self.table.identifier(Partition.PAYMENT, values)
                action = _action_of(values.get("action"))
                since = action.started_at if action else parse_iso(values[BY_STATUS.sort_key])
                yield PendingItem(payment_id, since, refund_id)

    # -- writes, as parts of a unit of work ----------------------------------------

    def add_payment(self, uow: DynamoUnitOfWork, payment: Payment) -> None:
        values = {
            PK: self.table.key(Partition.PAYMENT, payment.id),
            SK: PAYMENT_SK,
            **_created_values(payment),
            "amount_refunded": 0,
            "amount_reserved": 0,
            "refundable_left": 0,
            BY_STATUS.partition_key: (
                pending_partition(self.table.merchant, payment.id) if payment.status is Status.PENDING else None
            ),
            **listing_fields(self.table.merchant, payment.id, payment.created_at),
        }
        if payment.metadata:
            plaintext = json.dumps(payment.metadata, separators=(",", ":")).encode()
            values["metadata"] = self.metadata_cipher.seal(plaintext, payment.id).to_item()
        uow.add("payment", put_new(self.table.name, values, PK))

    def settle_payment(self, uow: DynamoUnitOfWork, before: Payment, after: Payment, entries: list[Entry]) -> None:
        authorized = after.status is Status.REQUIRES_CAPTURE
        fields = {
            **_settled_fields(after),
            "charge_id": after.charge_id,
            "decline_code": after.decline_code,
            BY_STATUS.partition_key: authorizations_partition(self.table.merchant) if authorized else None,
        }
        uow.add(
            "payment",
            update(
                self.table.name,
                self._payment_key(before.id),
                {k: v for k, v in fields.items() if v is not None},
                remove=() if authorized else (BY_STATUS.partition_key,),
                condition="#status = :pending",
                condition_values={":pending": Status.PENDING.value},
            ),
            self._found_payment,
        )
        self.chains.append(uow, entries)

    def claim_action(self, uow: DynamoUnitOfWork, payment: Payment, action: Action) -> None:
        fields = {
            "action": _action_values(action),
            BY_STATUS.partition_key: pending_partition(self.table.merchant, payment.id),
        }
        uow.add(
            "payment",
            update(
                self.table.name,
                self._payment_key(payment.id),
                fields,
                condition="#status = :requires_capture AND attribute_not_exists(#action)",
                condition_values={":requires_capture": Status.REQUIRES_CAPTURE.value},
            ),
            self._found_payment,
        )

    def release_action(self, uow: DynamoUnitOfWork, payment: Payment) -> None:
        uow.add(
            "payment",
            update(
                self.table.name,
                self._payment_key(payment.id),
                {BY_STATUS.partition_key: authorizations_partition(self.table.merchant)},
                remove=("action",),
                condition="#status = :requires_capture AND attribute_exists(#action)",
                condition_values={":requires_capture": Status.REQUIRES_CAPTURE.value},
            ),
            self._found_payment,
        )

    def settle_action(self, uow: DynamoUnitOfWork, before: Payment, after: Payment, entries: list[Entry]) -> None:
        fields = {k: v for k, v in _settled_fields(after).items() if v is not None}
        uow.add(
            "payment",
            update(
                self.table.name,
                self._payment_key(before.id),
                fields,
                remove=("action", BY_STATUS.partition_key),
                condition="#status = :requires_capture AND attribute_exists(#action)",
                condition_values={":requires_capture": Status.REQUIRES_CAPTURE.value},
            ),
            self._found_payment,
        )
        self.chains.append(uow, entries)

    def reserve_refund(self, uow: DynamoUnitOfWork, payment: Payment, refund: Refund) -> None:
        uow.add(
            "payment",
            # An item written before refunds were reserved has no `refundable_left` and may carry a refund status:
            # it gets both from what was read of it, on the condition that nothing was refunded since.
            self._payment_update(
                payment.id,
                "SET #left = if_not_exists(#left, :initially_left) - :amount,"
                " #reserved = if_not_exists(#reserved, :zero) + :amount, #status = :succeeded",
                refund.amount,
                condition="(#left >= :amount AND #status = :succeeded) OR (attribute_not_exists(#left)"
                " AND #refunded = :refunded_when_read AND #status IN (:succeeded, :partially, :fully))",
                extra_values={
                    ":succeeded": Status.SUCCEEDED.value,
                    ":partially": Status.PARTIALLY_REFUNDED.value,
                    ":fully": Status.REFUNDED.value,
                    ":initially_left": payment.amount - payment.amount_refunded,
                    ":refunded_when_read": payment.amount_refunded,
                    ":zero": 0,
                },
            ),
            self._found_payment,
        )
        values = {
            PK: self.table.key(Partition.PAYMENT, refund.payment_id),
            SK: f"{REFUND_SK}{refund.id}",
            **refund_values(refund),
            BY_STATUS.partition_key: pending_partition(self.table.merchant, refund.payment_id),
        }
        uow.add("refund", put_new(self.table.name, values, SK))

    def complete_refund(self, uow: DynamoUnitOfWork, refund: Refund, entries: list[Entry]) -> None:
        self._leave_pending(uow, refund)
        uow.add(
            "payment",
            self._payment_update(
                refund.payment_id, "SET #refunded = #refunded + :amount, #reserved = #reserved - :amount", refund.amount
            ),
        )
        self.chains.append(uow, entries)

    def cancel_refund(self, uow: DynamoUnitOfWork, refund: Refund) -> None:
        self._leave_pending(uow, refund)
        uow.add(
            "payment",
            self._payment_update(
                refund.payment_id, "SET #left = #left + :amount, #reserved = #reserved - :amount", refund.amount
            ),
        )

    def _leave_pending(self, uow: DynamoUnitOfWork, refund: Refund) -> None:
        fields = {"status": refund.status.value, "gateway_refund_id": refund.gateway_refund_id}
        uow.add(
            "refund",
            update(
                self.table.name,
                {PK: self.table.key(Partition.PAYMENT, refund.payment_id), SK: f"{REFUND_SK}{refund.id}"},
                {k: v for k, v in fields.items() if v is not None},
                remove=(BY_STATUS.partition_key,),
                condition="#status = :pending",
                condition_values={":pending": RefundStatus.PENDING.value},
            ),
            lambda values: refund_of(refund.payment_id, values) if values else None,
        )

    def _payment_key(self, payment_id: str) -> dict[str, Any]:
        return {PK: self.table.key(Partition.PAYMENT, payment_id), SK: PAYMENT_SK}

    def _payment_update(
        self,
        payment_id: str,
        expression: str,
        amount: int,
        condition: str = "",
        extra_values: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": to_item(self._payment_key(payment_id)),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {
                "#left": "refundable_left",
                "#reserved": "amount_reserved",
                "#refunded": "amount_refunded",
                "#status": "status",
            },
            "ExpressionAttributeValues": to_item({":amount": amount, **(extra_values or {})}),
        }
        names_used = expression + condition
        operation["ExpressionAttributeNames"] = {
            k: v for k, v in operation["ExpressionAttributeNames"].items() if k in names_used
        }
        if condition:
            operation["ConditionExpression"] = condition
        return {"Update": operation}


def _created_values(payment: Payment) -> dict[str, Any]:
    """What a payment's item holds from its creation (its metadata aside, which the store seals)."""
    return {
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.status.value,
        "card": card_values(payment.card),
        "description": payment.description,
        "decline_code": payment.decline_code,
        "charge_id": payment.charge_id,
        "created_at": iso(payment.created_at),
        "idempotency_id": payment.idempotency_id,
        "capture": None if payment.capture else False,
    }


def payment_values(payment: Payment) -> dict[str, Any]:
    """The payment as its item stores it, without key, index attributes or metadata (None: not stored), for
    ``payment_of`` to read back: what an event keeps of the payment it tells of."""
    return {
        **_created_values(payment),
        "amount_refunded": payment.amount_refunded,
        "amount_reserved": payment.amount_reserved,
        **_settled_fields(payment),
        "refundable_left": None,  # what reservations are checked against, on the payment's item only
    }


def refund_values(refund: Refund) -> dict[str, Any]:
    """The refund as its item stores it, without key or index attributes (None: not stored), for ``refund_of``."""
    return {
        "id": refund.id,
        "amount": refund.amount,
        "status": refund.status.value,
        "created_at": iso(refund.created_at),
        "idempotency_id": refund.idempotency_id,
        "gateway_refund_id": refund.gateway_refund_id,
    }


def _settled_fields(after: Payment) -> dict[str, Any]:
    """What settling a payment (or its authorisation's action) sets; None: nothing to set."""
    succeeded = after.status is Status.SUCCEEDED
    return {
        "status": after.status.value,
        "amount_captured": after.amount_captured if succeeded else None,
        "refundable_left": after.amount_captured if succeeded else None,
        "cancellation_reason": after.cancellation_reason.value if after.cancellation_reason else None,
    }


def _action_values(action: Action) -> dict[str, Any]:
    values = {
        "kind": action.kind.value,
        "started_at": iso(action.started_at),
        "amount": action.amount,
        "reason": action.reason.value if action.reason else None,
        "idempotency_id": action.idempotency_id,
    }
    return {k: v for k, v in values.items() if v is not None}


def _action_of(values: dict[str, Any] | None) -> Action | None:
    if not values:
        return None
    return Action(
        kind=ActionKind(values["kind"]),
        started_at=parse_iso(values["started_at"]),
        amount=int(values.get("amount", 0)),
        reason=CancellationReason(values["reason"]) if values.get("reason") else None,
        idempotency_id=values.get("idempotency_id"),
    )


def payment_of(payment_id: str, values: dict[str, Any], metadata: dict[str, str] | None = None) -> Payment:
    status = _lifecycle(Status(values["status"]))
    # an item written before authorisations has no captured amount: a succeeded one captured all of it
    captured = values.get("amount_captured", values["amount"] if status is Status.SUCCEEDED else 0)
    reason = values.get("cancellation_reason")
    return Payment(
        id=payment_id,
        amount=int(values["amount"]),
        currency=values["currency"],
        card=card_of(values["card"]),
        created_at=parse_iso(values["created_at"]),
        status=status,
        amount_refunded=int(values["amount_refunded"]),
        amount_reserved=int(values.get("amount_reserved", 0)),
        description=values.get("description"),
        metadata=metadata or {},
        charge_id=values.get("charge_id"),
        decline_code=values.get("decline_code"),
        idempotency_id=values.get("idempotency_id"),
        capture=values.get("capture", True),
        amount_captured=int(captured),
        cancellation_reason=CancellationReason(reason) if reason else None,
        action=_action_of(values.get("action")),
    )


def _lifecycle(stored: Status) -> Status:
    """The stored lifecycle status: items written before refunds were derived may say how much was refunded."""
    return Status.SUCCEEDED if stored in (Status.PARTIALLY_REFUNDED, Status.REFUNDED) else stored


def refund_of(payment_id: str, values: dict[str, Any]) -> Refund:
    return Refund(
        id=values["id"],
        payment_id=payment_id,
        amount=int(values["amount"]),
        created_at=parse_iso(values["created_at"]),
        status=RefundStatus(values["status"]),
        gateway_refund_id=values.get("gateway_refund_id"),
        idempotency_id=values.get("idempotency_id"),
    )
