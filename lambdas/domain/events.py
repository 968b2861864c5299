"""Events: every change of a payment's or refund's state, and every settlement matched or found to differ, as the
merchant is told of it (``GET /events``, webhooks).

An event is written in the transaction that makes its change (the outbox), so neither exists without the other. It
holds the payment, or the refund and its payment, as they stood right after the change; the payment's metadata is
attached when the event is read (it never changes, and it stays encrypted with the payment). A settlement's event
holds the merchant's share of it, with its mismatches, and no payment."""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from lambdas.domain.ids import new_id
from lambdas.domain.payments import Payment, Refund, RefundStatus, Status
from lambdas.domain.settlements import Share, ShareStatus

EVENT_RETENTION = timedelta(days=30)  # an event is kept at least this long (the table's TTL then removes it)
# A settlement's event lists at most this many of its mismatches (all are counted, and GET /settlements/{id} lists
# them all): an event is one item, which DynamoDB limits to 400 KB.
EVENT_MISMATCHES = 100


class EventType(StrEnum):
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_DECLINED = "payment.declined"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_REQUIRES_CAPTURE = "payment.requires_capture"
    PAYMENT_CANCELED = "payment.canceled"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    SETTLEMENT_RECONCILED = "settlement.reconciled"
    SETTLEMENT_MISMATCH = "settlement.mismatch"


PAYMENT_EVENTS = {
    Status.SUCCEEDED: EventType.PAYMENT_SUCCEEDED,
    Status.DECLINED: EventType.PAYMENT_DECLINED,
    Status.FAILED: EventType.PAYMENT_FAILED,
    Status.REQUIRES_CAPTURE: EventType.PAYMENT_REQUIRES_CAPTURE,
    Status.CANCELED: EventType.PAYMENT_CANCELED,
}
REFUND_EVENTS = {RefundStatus.SUCCEEDED: EventType.REFUND_SUCCEEDED, RefundStatus.FAILED: EventType.REFUND_FAILED}
SETTLEMENT_EVENTS = {
    ShareStatus.RECONCILED: EventType.SETTLEMENT_RECONCILED,
    ShareStatus.MISMATCHED: EventType.SETTLEMENT_MISMATCH,
}


@dataclass(frozen=True)
class Event:
    id: str
    type: EventType
    created_at: datetime
    payment: Payment | None  # the payment as it stood right after the change (a refund's: the payment refunded)
    refund: Refund | None = None  # a refund event's refund
    settlement: Share | None = None  # a settlement event's: the merchant's share, its mismatches attached

    @property
    def expires_at(self) -> datetime:
        return self.created_at + EVENT_RETENTION


def payment_event(payment: Payment, now: datetime) -> Event:
    """The event of ``payment``'s change to its (settled) state."""
    return Event(new_id("evt"), PAYMENT_EVENTS[payment.status], now, payment)


def refund_event(payment: Payment, refund: Refund, now: datetime) -> Event:
    """The event of ``refund``'s change to its (settled) state; ``payment``: the payment as it stands after it."""
    return Event(new_id("evt"), REFUND_EVENTS[refund.status], now, payment, refund)


def settlement_event(share: Share, now: datetime) -> Event:
    """The event of the merchant's share of a settlement, as it stands: reconciled, or found to differ."""
    listed = replace(share, mismatches=share.mismatches[:EVENT_MISMATCHES])
    return Event(new_id("evt"), SETTLEMENT_EVENTS[share.status], now, None, settlement=listed)
