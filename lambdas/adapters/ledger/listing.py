"""A merchant's payments, newest first (GET /payments), from the by_merchant index. The index keeps keys only,
so only a payment's creation writes it; the payments themselves are read by their keys."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from lambdas.adapters.ledger.table import LedgerTable
from lambdas.domain.payments import Payment
from lambdas.domain.timestamps import iso
from lambdas.storage_schema import BY_MERCHANT, Partition, from_item, to_item


class DynamoPaymentListing:
    def __init__(self, table: LedgerTable, get_payment: Callable[[str], Payment | None]) -> None:
        self.table = table
        self.get_payment = get_payment

    def list_payments(self, limit: int, starting_after: Payment | None) -> tuple[list[Payment], bool]:
        """Up to ``limit`` payments, newest first, created before ``starting_after`` (a payment of this merchant);
        whether more follow. Paging by the cursor's own place (time, then id), so payments created meanwhile,
        which sort before it, never shift a page."""
        condition, values = "#m = :m", {":m": _listing_partition(self.table.merchant)}
        if starting_after is not None:
            condition += " AND #k < :cursor"
            values[":cursor"] = _listing_key(starting_after.created_at, starting_after.id)
        answer = self.table.client.query(
            TableName=self.table.name,
            IndexName=BY_MERCHANT.name,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#m": BY_MERCHANT.partition_key}
            | ({"#k": BY_MERCHANT.sort_key} if starting_after else {}),
            ExpressionAttributeValues=to_item(values),
            ScanIndexForward=False,
            Limit=limit + 1,
        )
        ids = [self.table.identifier(Partition.PAYMENT, from_item(item)) for item in answer["Items"]]
        payments = [payment for payment in (self.get_payment(i) for i in ids[:limit]) if payment is not None]
        return payments, len(ids) > limit


def listing_fields(merchant: str, payment_id: str, created_at: datetime) -> dict[str, Any]:
    """What lists a payment (GET /payments): the by_merchant index's attributes of its item."""
    return {
        BY_MERCHANT.partition_key: _listing_partition(merchant),
        BY_MERCHANT.sort_key: _listing_key(created_at, payment_id),
    }


def _listing_partition(merchant: str) -> str:
    """The merchant's partition of the by_merchant index."""
    return f"PAYMENTS#{merchant}"


def _listing_key(created_at: datetime, payment_id: str) -> str:
    return f"{iso(created_at)}#{payment_id}"
