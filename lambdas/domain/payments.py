"""Payments, refunds and their double-entry ledger entries.

Money moves only when a payment succeeds (capture) or is refunded (reversal);
each movement is a balanced pair of entries, and entries are only ever added."""

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from lambdas.domain.cards import MaskedCard
from lambdas.domain.errors import InvalidRequest
from lambdas.domain.ids import new_id

RECEIVABLE = "gateway_receivable:sparkle"  # what the gateway owes the merchant
MERCHANT = "merchant_balance"  # what the merchant has earned


class Status(str, Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    FAILED = "failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


REFUNDABLE = {Status.SUCCEEDED, Status.PARTIALLY_REFUNDED}


class Direction(str, Enum):
    DEBIT = "debit"
    CREDIT = "credit"


@dataclass(frozen=True)
class Entry:
    id: str
    payment_id: str
    account: str
    direction: Direction
    amount: int
    currency: str
    created_at: datetime
    refund_id: str | None = None


def _transfer(payment_id: str, debit: str, credit: str, amount: int, currency: str, now: datetime, refund_id=None):
    return [
        Entry(new_id("le"), payment_id, debit, Direction.DEBIT, amount, currency, now, refund_id),
        Entry(new_id("le"), payment_id, credit, Direction.CREDIT, amount, currency, now, refund_id),
    ]


@dataclass(frozen=True)
class Refund:
    id: str
    payment_id: str
    amount: int
    status: str
    created_at: datetime
    gateway_refund_id: str | None = None


class IllegalTransition(Exception):
    """A state change the payment's status does not allow (a bug, not a client error)."""


@dataclass(frozen=True)
class Payment:
    id: str
    amount: int
    currency: str
    card: MaskedCard
    created_at: datetime
    status: Status = Status.PENDING
    amount_refunded: int = 0
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    charge_id: str | None = None
    decline_code: str | None = None

    @property
    def refundable_amount(self) -> int:
        return self.amount - self.amount_refunded if self.status in REFUNDABLE else 0

    def _require(self, *statuses: Status) -> None:
        if self.status not in statuses:
            raise IllegalTransition(f"{self.id} is {self.status.value}")

    def succeed(self, charge_id: str, now: datetime) -> tuple["Payment", list[Entry]]:
        """Captured by the gateway: the gateway now owes the merchant the amount."""
        self._require(Status.PENDING)
        captured = replace(self, status=Status.SUCCEEDED, charge_id=charge_id)
        return captured, _transfer(self.id, RECEIVABLE, MERCHANT, self.amount, self.currency, now)

    def decline(self, decline_code: str, charge_id: str | None = None) -> "Payment":
        self._require(Status.PENDING)
        return replace(self, status=Status.DECLINED, decline_code=decline_code, charge_id=charge_id)

    def fail(self) -> "Payment":
        self._require(Status.PENDING)
        return replace(self, status=Status.FAILED)

    def check_refund(self, amount: int | None) -> int:
        """The amount a refund of ``amount`` (None: all that is left) would return."""
        if self.status not in REFUNDABLE:
            raise InvalidRequest(f"Payment {self.id} is {self.status.value}; only succeeded payments can be refunded.",
                                 "amount", "payment_not_refundable")  # fmt: skip
        amount = self.refundable_amount if amount is None else amount
        if not 0 < amount <= self.refundable_amount:
            raise InvalidRequest(f"At most {self.refundable_amount} can be refunded.", "amount", "amount_too_large")
        return amount

    def refund(self, refund_id: str, amount: int, now: datetime, gateway_refund_id: str | None = None):
        """Give back ``amount``: reversing entries; the old ones stay as they are."""
        amount = self.check_refund(amount)
        refunded_total = self.amount_refunded + amount
        status = Status.REFUNDED if refunded_total == self.amount else Status.PARTIALLY_REFUNDED
        refunded = replace(self, amount_refunded=refunded_total, status=status)
        refund = Refund(refund_id, self.id, amount, "succeeded", now, gateway_refund_id)
        entries = _transfer(self.id, MERCHANT, RECEIVABLE, amount, self.currency, now, refund_id)
        return refunded, refund, entries


def balance(entries: list[Entry]) -> dict[str, int]:
    """Net debit-minus-credit per account; a balanced ledger sums to zero."""
    totals: dict[str, int] = {}
    for entry in entries:
        sign = 1 if entry.direction is Direction.DEBIT else -1
        totals[entry.account] = totals.get(entry.account, 0) + sign * entry.amount
    return totals
