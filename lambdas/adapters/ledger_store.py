"""The ledger table: tokens, payments, refunds and ledger entries as items
(``lambdas.ports.LedgerStore``).

Item layout comes from ``lambdas.storage_schema``. Entries are only ever put
(``attribute_not_exists``); a payment or refund leaves ``pending`` only once
(a condition on its status), so two writers cannot both settle it. A refund
reserves its amount with a condition on what is left (``refundable_left``), an
arithmetic update that needs no read-modify-write: it fails only when too
little is left (or when what is left changed under a stale check).
"""

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from lambdas.adapters.dynamo import MOVED_HEAD, DynamoUnitOfWork, Part, from_item, put_new, to_item, update
from lambdas.adapters.envelope import EnvelopeCipher, Sealed
from lambdas.domain.cards import MaskedCard
from lambdas.domain.chains import Head, canonical, chain_of, linked_hash
from lambdas.domain.checkpoints import Checkpoint
from lambdas.domain.payments import Direction, Entry, Payment, Refund, RefundStatus, Status
from lambdas.domain.timestamps import iso, parse_iso
from lambdas.ports import MisfiledCheckpoint, PendingItem, StoredToken
from lambdas.storage_schema import LEDGER, Partition

PK = LEDGER.partition_key
if LEDGER.sort_key is None:
    raise TypeError("the ledger's items are keyed by partition and sort key")
SK = LEDGER.sort_key
BY_STATUS, BY_MERCHANT, BY_CHAIN = LEDGER.indexes
HEADS = "heads"  # the identifier of a merchant's partition of chain heads (one query reads them all)
CHECKPOINTS = "checkpoints"  # the identifier of a merchant's partition of checkpoints, by sequence
HEAD_SK = "HEAD#"
PAYMENT_SK = "PAYMENT"
TOKEN_SK = "TOKEN"
REFUND_SK = "REFUND#"
CHECKPOINT_SK = "CHECKPOINT#"


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


def _card_values(card: MaskedCard) -> dict[str, Any]:
    return {
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "fingerprint": card.fingerprint,
    }


def _card_of(values: dict[str, Any]) -> MaskedCard:
    return MaskedCard(
        values["brand"], values["last4"], int(values["exp_month"]), int(values["exp_year"]), values["fingerprint"]
    )


class DynamoLedgerStore:
    """One merchant's records: every key this store reads or writes names ``merchant``."""

    def __init__(
        self,
        client: Any,
        table: str,
        metadata_cipher: EnvelopeCipher,
        merchant: str,
        page_size: int | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.metadata_cipher = metadata_cipher
        self.merchant = merchant
        self.page_size = page_size  # items per query page (None: DynamoDB's 1 MB pages)
        self._listing = f"PAYMENTS#{merchant}"  # the merchant's partition of the by_merchant index
        self.heads_read_ahead: dict[int, Head] = {}  # chain -> its head as read with a payment's token (this request)

    def _key(self, partition: Partition, identifier: str) -> str:
        return partition.key(self.merchant, identifier)

    def _payment_id(self, values: dict[str, Any]) -> str:
        return str(values[PK]).removeprefix(self._key(Partition.PAYMENT, ""))

    def unit_of_work(self) -> DynamoUnitOfWork:
        return DynamoUnitOfWork(self.client)

    # -- reads ------------------------------------------------------------------

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table, Key=_key_item(pk, sk), ConsistentRead=True)
        return from_item(item["Item"]) if "Item" in item else None

    def _get_together(self, keys: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """Items by (partition, sort) key, consistently read in one ``BatchGetItem``; a key that it leaves
        unprocessed (as DynamoDB may under load) is read on its own."""
        answer = self.client.batch_get_item(
            RequestItems={self.table: {"Keys": [_key_item(pk, sk) for pk, sk in keys], "ConsistentRead": True}}
        )
        found = {(v[PK], v[SK]): v for v in map(from_item, answer["Responses"].get(self.table, []))}
        left = answer.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
        unprocessed = {(v[PK], v[SK]) for v in map(from_item, left)}
        return [self._get(*key) if key in unprocessed else found.get(key) for key in keys]

    def get_token(self, token_id: str, for_payment: str | None = None) -> StoredToken | None:
        """The token. With ``for_payment``, the head of that payment's chain is read in the same round trip and
        kept for the entries that settle the payment, which then need no read of their own."""
        token_key = (self._key(Partition.TOKEN, token_id), TOKEN_SK)
        if for_payment is None:
            values = self._get(*token_key)
        else:
            chain = chain_of(for_payment)
            values, head = self._get_together([token_key, self._head_key(chain)])
            self.heads_read_ahead[chain] = head_of(head) if head else Head(chain)
        if values is None:
            return None
        return StoredToken(_card_of(values), Sealed.from_item(values["card"]))

    def get_payment(self, payment_id: str, with_metadata: bool = True) -> Payment | None:
        """The payment; its metadata is decrypted only when asked for (it takes the vault key)."""
        values = self._get(self._key(Partition.PAYMENT, payment_id), PAYMENT_SK)
        if values is None:
            return None
        metadata = {}
        if with_metadata and "metadata" in values:
            metadata = json.loads(self.metadata_cipher.open(Sealed.from_item(values["metadata"]), payment_id))
        return self._payment(values, metadata)

    def _payment(self, values: dict[str, Any], metadata: dict[str, str] | None = None) -> Payment:
        return Payment(
            id=self._payment_id(values),
            amount=int(values["amount"]),
            currency=values["currency"],
            card=_card_of(values["card"]),
            created_at=parse_iso(values["created_at"]),
            status=_lifecycle(Status(values["status"])),
            amount_refunded=int(values["amount_refunded"]),
            amount_reserved=int(values.get("amount_reserved", 0)),
            description=values.get("description"),
            metadata=metadata or {},
            charge_id=values.get("charge_id"),
            decline_code=values.get("decline_code"),
            idempotency_id=values.get("idempotency_id"),
        )

    def get_refund(self, payment_id: str, refund_id: str) -> Refund | None:
        values = self._get(self._key(Partition.PAYMENT, payment_id), f"{REFUND_SK}{refund_id}")
        return _refund_of(payment_id, values) if values else None

    def list_payments(self, limit: int, starting_after: Payment | None) -> tuple[list[Payment], bool]:
        """Up to ``limit`` payments, newest first, created before ``starting_after`` (a payment of this merchant);
        whether more follow. Paging by the cursor's own place (time, then id), so payments created meanwhile,
        which sort before it, never shift a page."""
        condition, values = "#m = :m", {":m": self._listing}
        if starting_after is not None:
            condition += " AND #k < :cursor"
            values[":cursor"] = _listing_key(starting_after.created_at, starting_after.id)
        answer = self.client.query(
            TableName=self.table,
            IndexName=BY_MERCHANT.name,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#m": BY_MERCHANT.partition_key}
            | ({"#k": BY_MERCHANT.sort_key} if starting_after else {}),
            ExpressionAttributeValues=to_item(values),
            ScanIndexForward=False,
            Limit=limit + 1,
        )
        ids = [self._payment_id(from_item(item)) for item in answer["Items"]]
        payments = [payment for payment in (self.get_payment(i) for i in ids[:limit]) if payment is not None]
        return payments, len(ids) > limit

    def pending(self, created_before: datetime) -> Iterator[PendingItem]:
        """The merchant's pending payments and refunds created before ``created_before``: its shards are read at
        once (a listing then takes one query's time, as before shards), each page by page."""
        with ThreadPoolExecutor(max_workers=PENDING_SHARDS) as pool:
            shards = pool.map(lambda shard: list(self._pending_in(shard, created_before)), range(PENDING_SHARDS))
            for items in shards:
                yield from items

    def _pending_in(self, shard: int, created_before: datetime) -> Iterator[PendingItem]:
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            IndexName=BY_STATUS.name,
            KeyConditionExpression="#status = :pending AND #at < :before",
            ExpressionAttributeNames={"#status": BY_STATUS.partition_key, "#at": BY_STATUS.sort_key},
            ExpressionAttributeValues=to_item(
                {":pending": _pending_shard(self.merchant, shard), ":before": iso(created_before)}
            ),
            PaginationConfig={"PageSize": self.page_size} if self.page_size else {},
        )
        for page in pages:
            for item in page["Items"]:
                values = from_item(item)
                refund_id = values[SK].removeprefix(REFUND_SK) if values[SK].startswith(REFUND_SK) else None
                yield PendingItem(self._payment_id(values), parse_iso(values[BY_STATUS.sort_key]), refund_id)

    def _partition(self, pk: str, **query: Any) -> Iterator[dict[str, Any]]:
        """Every item of a partition, consistently read, page by page (``query``: more of the Query's parameters)."""
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": PK},
            ExpressionAttributeValues=to_item({":pk": pk}),
            ConsistentRead=True,
            **query,
        )
        return (from_item(item) for page in pages for item in page["Items"])

    def entries(self, payment_id: str) -> list[Entry]:
        return [entry_of(values) for values in self._partition(self._key(Partition.LEDGER, payment_id))]

    def _head_key(self, chain: int) -> tuple[str, str]:
        return self._key(Partition.CHAIN, HEADS), f"{HEAD_SK}{chain:02d}"

    def head(self, chain: int) -> Head:
        values = self._get(*self._head_key(chain))
        return head_of(values) if values else Head(chain)

    def heads(self) -> list[Head]:
        """Every chain's head that has entries: one query (the balances are their sum)."""
        return [head_of(values) for values in self._partition(self._key(Partition.CHAIN, HEADS))]

    def hash_at(self, chain: int, sequence: int) -> str | None:
        """From the by_chain index, which DynamoDB updates within about a second of a write: an entry that old is
        there, and so is the one before it."""
        answer = self.client.query(
            TableName=self.table,
            IndexName=BY_CHAIN.name,
            KeyConditionExpression="#chain = :chain AND #seq BETWEEN :before AND :seq",
            ExpressionAttributeNames={"#chain": BY_CHAIN.partition_key, "#seq": BY_CHAIN.sort_key},
            ExpressionAttributeValues=to_item(
                {
                    ":chain": self._key(Partition.CHAIN, str(chain)),
                    ":before": chain_position(max(1, sequence - 1)),
                    ":seq": chain_position(sequence),
                }
            ),
        )
        entries = {entry.sequence: entry for entry in map(entry_of, map(from_item, answer["Items"]))}
        return linked_hash(self.merchant, entries, sequence)

    def latest_checkpoint(self) -> Checkpoint | None:
        newest = self._partition(self._key(Partition.CHECKPOINT, CHECKPOINTS), ScanIndexForward=False, Limit=1)
        values = next(newest, None)
        return _checkpoint_of(values) if values else None

    def checkpoints(self) -> Iterator[Checkpoint]:
        return (_checkpoint_of(values) for values in self._partition(self._key(Partition.CHECKPOINT, CHECKPOINTS)))

    def checkpoint(self, sequence: int) -> Checkpoint | None:
        values = self._get(self._key(Partition.CHECKPOINT, CHECKPOINTS), _checkpoint_sk(sequence))
        return _checkpoint_of(values) if values else None

    def list_checkpoints(self, limit: int, before: int | None) -> tuple[list[Checkpoint], bool]:
        """Up to ``limit`` checkpoints, newest first, numbered below ``before`` (None: from the newest); whether more
        follow."""
        condition, values = "#pk = :pk", {":pk": self._key(Partition.CHECKPOINT, CHECKPOINTS)}
        if before is not None:
            condition += " AND #sk < :before"
            values[":before"] = _checkpoint_sk(before)
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#pk": PK} | ({"#sk": SK} if before is not None else {}),
            ExpressionAttributeValues=to_item(values),
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=limit + 1,
        )
        found = [_checkpoint_of(from_item(item)) for item in answer["Items"]]
        return found[:limit], len(found) > limit

    # -- writes, as parts of a unit of work ----------------------------------------

    def add_checkpoint(self, uow: DynamoUnitOfWork, checkpoint: Checkpoint) -> None:
        """The signed JSON is kept as signed (text), so that what is served is byte for byte what was signed."""
        unsigned = {field: value for field, value in checkpoint.body.items() if field != "signature"}
        values = {
            PK: self._key(Partition.CHECKPOINT, CHECKPOINTS),
            SK: _checkpoint_sk(checkpoint.sequence),
            "document": canonical(unsigned).decode(),
            "signature": checkpoint.body["signature"],
            "chains": canonical({"chains": checkpoint.chains}).decode(),
        }
        uow.add("checkpoint", put_new(self.table, values, PK))

    def add_token(
        self, uow: DynamoUnitOfWork, token_id: str, card: MaskedCard, sealed_card: Sealed, now: datetime
    ) -> None:
        values = {
            PK: self._key(Partition.TOKEN, token_id),
            SK: TOKEN_SK,
            "card": sealed_card.to_item(),
            "created_at": iso(now),
            **_card_values(card),
        }
        uow.add("token", put_new(self.table, values, PK))

    def add_payment(self, uow: DynamoUnitOfWork, payment: Payment) -> None:
        values = {
            PK: self._key(Partition.PAYMENT, payment.id),
            SK: PAYMENT_SK,
            "amount": payment.amount,
            "currency": payment.currency,
            "status": payment.status.value,
            "amount_refunded": 0,
            "amount_reserved": 0,
            "refundable_left": 0,
            "card": _card_values(payment.card),
            "description": payment.description,
            "decline_code": payment.decline_code,
            "charge_id": payment.charge_id,
            "created_at": iso(payment.created_at),
            "idempotency_id": payment.idempotency_id,
            BY_STATUS.partition_key: (
                pending_partition(self.merchant, payment.id) if payment.status is Status.PENDING else None
            ),
            **self.listing_fields(payment.id, payment.created_at),
        }
        if payment.metadata:
            plaintext = json.dumps(payment.metadata, separators=(",", ":")).encode()
            values["metadata"] = self.metadata_cipher.seal(plaintext, payment.id).to_item()
        uow.add("payment", put_new(self.table, values, PK))

    def settle_payment(self, uow: DynamoUnitOfWork, before: Payment, after: Payment, entries: list[Entry]) -> None:
        fields = {
            "status": after.status.value,
            "charge_id": after.charge_id,
            "decline_code": after.decline_code,
            "refundable_left": after.amount if after.status is Status.SUCCEEDED else None,
        }
        uow.add(
            "payment",
            update(
                self.table,
                self._payment_key(before.id),
                {k: v for k, v in fields.items() if v is not None},
                remove=(BY_STATUS.partition_key,),
                condition="#status = :pending",
                condition_values={":pending": Status.PENDING.value},
            ),
            self._found_payment,
        )
        self._add_entries(uow, entries)

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
            PK: self._key(Partition.PAYMENT, refund.payment_id),
            SK: f"{REFUND_SK}{refund.id}",
            "id": refund.id,
            "amount": refund.amount,
            "status": refund.status.value,
            "created_at": iso(refund.created_at),
            "idempotency_id": refund.idempotency_id,
            BY_STATUS.partition_key: pending_partition(self.merchant, refund.payment_id),
        }
        uow.add("refund", put_new(self.table, values, SK))

    def complete_refund(self, uow: DynamoUnitOfWork, refund: Refund, entries: list[Entry]) -> None:
        self._leave_pending(uow, refund)
        uow.add(
            "payment",
            self._payment_update(
                refund.payment_id, "SET #refunded = #refunded + :amount, #reserved = #reserved - :amount", refund.amount
            ),
        )
        self._add_entries(uow, entries)

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
                self.table,
                {PK: self._key(Partition.PAYMENT, refund.payment_id), SK: f"{REFUND_SK}{refund.id}"},
                {k: v for k, v in fields.items() if v is not None},
                remove=(BY_STATUS.partition_key,),
                condition="#status = :pending",
                condition_values={":pending": RefundStatus.PENDING.value},
            ),
            lambda values: _refund_of(refund.payment_id, values) if values else None,
        )

    def _payment_key(self, payment_id: str) -> dict[str, Any]:
        return {PK: self._key(Partition.PAYMENT, payment_id), SK: PAYMENT_SK}

    def _payment_update(
        self,
        payment_id: str,
        expression: str,
        amount: int,
        condition: str = "",
        extra_values: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "TableName": self.table,
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

    def _found_payment(self, values: dict[str, Any] | None) -> Payment | None:
        return self._payment(values) if values else None

    def _add_entries(self, uow: DynamoUnitOfWork, entries: list[Entry]) -> None:
        if entries:
            uow.append(ChainAppend(self, entries))

    def entry_parts(self, head: Head, entries: list[Entry]) -> list[Part]:
        """The entries placed after ``head``, and the head's update on the condition that it has not moved."""
        placed, after = head.extend(self.merchant, entries)
        parts: list[Part] = [
            ("entry", put_new(self.table, self._entry_item(n, e), PK), lambda item: item) for n, e in enumerate(placed)
        ]
        return [*parts, self.head_part(head, after)]

    def head_part(self, head: Head, after: Head) -> Part:
        """``head`` moved to ``after``, on the condition that no other writer moved it first (label ``MOVED_HEAD``)."""
        moved = "attribute_not_exists(#pk)" if head.sequence == 0 else "#sequence = :expected"
        update = {
            "TableName": self.table,
            "Key": _key_item(*self._head_key(head.chain)),
            "UpdateExpression": "SET #sequence = :sequence, #hash = :hash, #balances = :balances",
            "ConditionExpression": moved,
            "ExpressionAttributeNames": {"#sequence": "sequence", "#hash": "hash", "#balances": "balances"}
            | ({"#pk": PK} if head.sequence == 0 else {}),
            "ExpressionAttributeValues": to_item(
                {":sequence": after.sequence, ":hash": after.hash, ":balances": _balances_item(after)}
                | ({":expected": head.sequence} if head.sequence else {})
            ),
        }
        return MOVED_HEAD, {"Update": update}, lambda item: item

    def chain_fields(self, e: Entry) -> dict[str, Any]:
        """What places an entry in its chain: its fields, and the by_chain index's."""
        return {
            "payment_id": e.payment_id,
            "chain": e.chain,
            "sequence": e.sequence,
            "hash": e.hash,
            BY_CHAIN.partition_key: self._key(Partition.CHAIN, str(e.chain)),
            BY_CHAIN.sort_key: f"{e.sequence:012d}",  # chain_position
        }

    def listing_fields(self, payment_id: str, created_at: datetime) -> dict[str, Any]:
        """What lists a payment (GET /payments): the by_merchant index's attributes."""
        return {
            BY_MERCHANT.partition_key: self._listing,
            BY_MERCHANT.sort_key: _listing_key(created_at, payment_id),
        }

    def _entry_item(self, n: int, e: Entry) -> dict[str, Any]:
        return {
            PK: self._key(Partition.LEDGER, e.payment_id),
            SK: f"ENTRY#{iso(e.created_at)}#{n}#{e.id}",
            "id": e.id,
            "account": e.account,
            "direction": e.direction.value,
            "amount": e.amount,
            "currency": e.currency,
            "created_at": iso(e.created_at),
            "refund_id": e.refund_id,
            **self.chain_fields(e),
        }


class ChainAppend:
    """One payment's entries, placed at the end of its chain: after the head read ahead with the payment's token,
    else after a fresh read. An attempt that finds the head moved learns the new head from its own failure (the
    head part returns the item it found), and the next attempt, made at once, places the entries after that one
    without a read; attempts after a wait read the head again."""

    def __init__(self, store: DynamoLedgerStore, entries: list[Entry]) -> None:
        self.store = store
        self.entries = entries
        (self.chain,) = {chain_of(entry.payment_id) for entry in entries}
        self.head = store.heads_read_ahead.pop(self.chain, None)

    def parts(self, reread: bool) -> list[Part]:
        head = None if reread else self.head
        *entries, (label, head_update, _) = self.store.entry_parts(head or self.store.head(self.chain), self.entries)
        return [*entries, (label, head_update, self._moved_to)]

    def _moved_to(self, found: dict[str, Any] | None) -> Head | None:
        """The head part's decoder, on a failed condition: the head another writer left (read afresh by the next
        attempt when the failure did not return it)."""
        self.head = head_of(found) if found else None
        return self.head


def chain_position(sequence: int) -> str:
    """An entry's sort key in the by_chain index (``chain_fields`` writes it): its sequence, zero-padded so that
    text order is sequence order."""
    return f"{sequence:012d}"


def _key_item(pk: str, sk: str) -> dict[str, Any]:
    """An item's key, as DynamoDB's low-level API takes it."""
    return to_item({PK: pk, SK: sk})


def _listing_key(created_at: datetime, payment_id: str) -> str:
    return f"{iso(created_at)}#{payment_id}"


def _checkpoint_sk(sequence: int) -> str:
    return f"{CHECKPOINT_SK}{sequence:012d}"


def _checkpoint_of(values: dict[str, Any]) -> Checkpoint:
    """A checkpoint as stored; one under another sequence's sort key is refused (``MisfiledCheckpoint``)."""
    body = json.loads(values["document"]) | {"signature": values["signature"]}
    checkpoint = Checkpoint(body, json.loads(values["chains"])["chains"])
    if values[SK] != _checkpoint_sk(checkpoint.sequence):
        raise MisfiledCheckpoint(str(values[SK]), checkpoint.sequence)
    return checkpoint


def _balances_item(head: Head) -> dict[str, int]:
    return {f"{currency}:{account}": amount for (account, currency), amount in head.balances.items()}


def head_of(values: dict[str, Any]) -> Head:
    balances = {}
    for key, amount in values.get("balances", {}).items():
        currency, account = key.split(":", 1)
        balances[(account, currency)] = int(amount)
    return Head(int(values[SK].removeprefix(HEAD_SK)), int(values["sequence"]), values["hash"], balances)


def entry_of(values: dict[str, Any]) -> Entry:
    """An entry as stored; ``payment_id`` from its key where an entry written before chains lacks the field."""
    return Entry(
        values["id"],
        values.get("payment_id") or str(values[PK]).rsplit("#", 1)[1],
        values["account"],
        Direction(values["direction"]),
        int(values["amount"]),
        values["currency"],
        parse_iso(values["created_at"]),
        values.get("refund_id"),
        int(values["chain"]) if "chain" in values else None,
        int(values["sequence"]) if "sequence" in values else None,
        values.get("hash"),
    )


def _lifecycle(stored: Status) -> Status:
    """The stored lifecycle status: items written before refunds were derived may say how much was refunded."""
    return Status.SUCCEEDED if stored in (Status.PARTIALLY_REFUNDED, Status.REFUNDED) else stored


def _refund_of(payment_id: str, values: dict[str, Any]) -> Refund:
    return Refund(
        id=values["id"],
        payment_id=payment_id,
        amount=int(values["amount"]),
        created_at=parse_iso(values["created_at"]),
        status=RefundStatus(values["status"]),
        gateway_refund_id=values.get("gateway_refund_id"),
        idempotency_id=values.get("idempotency_id"),
    )
