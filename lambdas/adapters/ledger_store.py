"""The ledger table: tokens, payments, refunds and ledger entries as items.

Item layout comes from ``lambdas.storage_schema``. Entries are only ever put
(``attribute_not_exists``); payments change state only from the state they were
read in (optimistic conditions), so two writers cannot both settle one payment.
"""

import json
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from lambdas.adapters.dynamo import from_item, put_new, to_item, update
from lambdas.adapters.envelope import EnvelopeCipher, Sealed
from lambdas.domain.cards import MaskedCard
from lambdas.domain.payments import Direction, Entry, Payment, Refund, Status
from lambdas.storage_schema import LEDGER, Partition

PK, SK = LEDGER.partition_key, LEDGER.sort_key
BY_FINGERPRINT, BY_STATUS = LEDGER.indexes
PAYMENT_SK = "PAYMENT"
TOKEN_SK = "TOKEN"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _card_values(card: MaskedCard) -> dict:
    return {"brand": card.brand, "last4": card.last4, "exp_month": card.exp_month, "exp_year": card.exp_year,
            "fingerprint": card.fingerprint}  # fmt: skip


def _card_of(values: dict) -> MaskedCard:
    return MaskedCard(values["brand"], values["last4"], int(values["exp_month"]), int(values["exp_year"]),
                      values["fingerprint"])  # fmt: skip


class LedgerStore:
    def __init__(self, client, table: str, metadata_cipher: EnvelopeCipher) -> None:
        self.client = client
        self.table = table
        self.metadata_cipher = metadata_cipher

    # -- reads ------------------------------------------------------------------

    def _get(self, pk: str, sk: str) -> dict | None:
        item = self.client.get_item(TableName=self.table, Key=to_item({PK: pk, SK: sk}), ConsistentRead=True)
        return from_item(item["Item"]) if "Item" in item else None

    def get_token(self, token_id: str) -> tuple[MaskedCard, Sealed, datetime] | None:
        values = self._get(Partition.TOKEN.key(token_id), TOKEN_SK)
        if values is None:
            return None
        return _card_of(values), Sealed.from_item(values["card"]), parse_iso(values["created_at"])

    def get_payment(self, payment_id: str, with_metadata: bool = True) -> Payment | None:
        """The payment; its metadata is decrypted only when asked for (it takes the vault key)."""
        values = self._get(Partition.PAYMENT.key(payment_id), PAYMENT_SK)
        if values is None:
            return None
        metadata = {}
        if with_metadata and "metadata" in values:
            opened = self.metadata_cipher.open(Sealed.from_item(values["metadata"]), payment_id)
            metadata = json.loads(opened)
        return Payment(
            id=payment_id,
            amount=int(values["amount"]),
            currency=values["currency"],
            card=_card_of(values["card"]),
            created_at=parse_iso(values["created_at"]),
            status=Status(values["status"]),
            amount_refunded=int(values["amount_refunded"]),
            description=values.get("description"),
            metadata=metadata,
            charge_id=values.get("charge_id"),
            decline_code=values.get("decline_code"),
        )

    def count_payments_since(self, fingerprint: str, since: datetime) -> int:
        response = self.client.query(
            TableName=self.table,
            IndexName=BY_FINGERPRINT.name,
            KeyConditionExpression="#fp = :fp AND #at >= :since",
            ExpressionAttributeNames={"#fp": BY_FINGERPRINT.partition_key, "#at": BY_FINGERPRINT.sort_key},
            ExpressionAttributeValues=to_item({":fp": fingerprint, ":since": iso(since)}),
            Select="COUNT",
        )
        return int(response["Count"])

    def pending_payment_ids(self, created_before: datetime) -> list[str]:
        response = self.client.query(
            TableName=self.table,
            IndexName=BY_STATUS.name,
            KeyConditionExpression="#status = :pending AND #at < :before",
            ExpressionAttributeNames={"#status": BY_STATUS.partition_key, "#at": BY_STATUS.sort_key},
            ExpressionAttributeValues=to_item({":pending": Status.PENDING.value, ":before": iso(created_before)}),
        )
        return [from_item(item)[PK].removeprefix(Partition.PAYMENT.value) for item in response["Items"]]

    def entries(self, payment_id: str) -> list[Entry]:
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": PK},
            ExpressionAttributeValues=to_item({":pk": Partition.LEDGER.key(payment_id)}),
            ConsistentRead=True,
        )
        items = [from_item(item) for page in pages for item in page["Items"]]
        return [
            Entry(v["id"], payment_id, v["account"], Direction(v["direction"]), int(v["amount"]), v["currency"],
                  parse_iso(v["created_at"]), v.get("refund_id"))  # fmt: skip
            for v in items
        ]

    # -- transaction parts --------------------------------------------------------

    def new_token(self, token_id: str, card: MaskedCard, sealed: Sealed, created_at: datetime) -> dict:
        values = {PK: Partition.TOKEN.key(token_id), SK: TOKEN_SK, "card": sealed.to_item(),
                  "created_at": iso(created_at), **_card_values(card)}  # fmt: skip
        return put_new(self.table, values, PK)

    def new_payment(self, payment: Payment) -> dict:
        values = {
            PK: Partition.PAYMENT.key(payment.id),
            SK: PAYMENT_SK,
            "amount": payment.amount,
            "currency": payment.currency,
            "status": payment.status.value,
            "amount_refunded": payment.amount_refunded,
            "card": _card_values(payment.card),
            "description": payment.description,
            "decline_code": payment.decline_code,
            "charge_id": payment.charge_id,
            "created_at": iso(payment.created_at),
            BY_FINGERPRINT.partition_key: payment.card.fingerprint,
            BY_STATUS.partition_key: Status.PENDING.value if payment.status is Status.PENDING else None,
        }
        if payment.metadata:
            plaintext = json.dumps(payment.metadata, separators=(",", ":")).encode()
            values["metadata"] = self.metadata_cipher.seal(plaintext, payment.id).to_item()
        return put_new(self.table, values, PK)

    def change_payment(self, before: Payment, after: Payment) -> dict:
        """Move a payment from the state it was read in (and only from it)."""
        fields = {"status": after.status.value, "amount_refunded": after.amount_refunded,
                  "charge_id": after.charge_id, "decline_code": after.decline_code}  # fmt: skip
        fields = {k: v for k, v in fields.items() if v is not None}
        remove = (BY_STATUS.partition_key,) if after.status is not Status.PENDING else ()
        return update(
            self.table,
            {PK: Partition.PAYMENT.key(before.id), SK: PAYMENT_SK},
            fields,
            remove=remove,
            condition="#status = :was_status AND #amount_refunded = :was_refunded",
            condition_values={":was_status": before.status.value, ":was_refunded": before.amount_refunded},
        )

    def new_entries(self, entries: list[Entry]) -> list[dict]:
        return [
            put_new(self.table, {PK: Partition.LEDGER.key(e.payment_id), SK: f"ENTRY#{iso(e.created_at)}#{n}#{e.id}",
                                 "id": e.id, "account": e.account, "direction": e.direction.value,
                                 "amount": e.amount, "currency": e.currency, "created_at": iso(e.created_at),
                                 "refund_id": e.refund_id}, PK)  # fmt: skip
            for n, e in enumerate(entries)
        ]

    def new_refund(self, refund: Refund) -> dict:
        values = {PK: Partition.PAYMENT.key(refund.payment_id), SK: f"REFUND#{refund.id}", "id": refund.id,
                  "amount": refund.amount, "status": refund.status, "created_at": iso(refund.created_at),
                  "gateway_refund_id": refund.gateway_refund_id}  # fmt: skip
        return put_new(self.table, values, SK)

    def write(self, parts: list[dict]) -> None:
        """All parts, or none (raises ``TransactionCanceledException``)."""
        self.client.transact_write_items(TransactItems=parts)

    def write_unless_raced(self, parts: list[dict]) -> bool:
        """All parts, or none: False when a condition failed because another writer got there first."""
        try:
            self.write(parts)
            return True
        except ClientError as error:
            if error.response["Error"]["Code"] in ("TransactionCanceledException", "ConditionalCheckFailedException"):
                return False
            raise
