"""Payments, refunds and their double-entry ledger entries.

Money moves only when a payment succeeds (capture) or a refund succeeds
(reversal); each movement is a balanced group of entries, and entries are only
ever added. An authorisation (a payment made without capture) books a hold,
which its capture, cancel or expiry reverses in full. A refund is first
*reserved* (pending): its amount is held on the payment before the gateway is
asked, so concurrent refunds can never ask for more than was captured. A
capture or cancel is first *claimed* on the authorisation the same way, so of
two racing on one payment exactly one is ever sent."""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum

from lambdas.domain.cards import MaskedCard
from lambdas.domain.errors import InvalidRequest
from lambdas.domain.ids import new_id

RECEIVABLE = "gateway_receivable:sparkle"  # what the gateway owes the merchant
MERCHANT = "merchant_balance"  # what the merchant has earned
HOLD = "authorization_hold"  # what authorisations hold on cards, until captured, cancelled or expired
HOLD_OFFSET = "authorization_hold_offset"  # the other side of each hold

AUTHORIZATION_VALIDITY = timedelta(days=7)  # an authorisation not captured within this is cancelled


class Status(str, Enum):
    """A payment's status as the contract shows it. The refund statuses are not stored: a captured
    payment's refund status is derived from what was refunded."""

    PENDING = "pending"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class CancellationReason(str, Enum):
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    EXPIRED = "expired"


class ActionKind(str, Enum):
    """What may be done to an authorisation: each refuses a payment it cannot act on with its own code."""

    CAPTURE = "capture"
    CANCEL = "cancel"

    @property
    def refusal(self) -> str:
        return "payment_not_capturable" if self is ActionKind.CAPTURE else "payment_not_cancelable"

    @property
    def done(self) -> str:
        return "captured" if self is ActionKind.CAPTURE else "canceled"


@dataclass(frozen=True)
class Action:
    """A capture or cancel claimed on an authorisation before the gateway is asked: only one is ever claimed, and
    it stays until what the gateway did is booked (by the request, its retry or reconciliation)."""

    kind: ActionKind
    started_at: datetime
    amount: int = 0  # a capture's amount
    reason: CancellationReason | None = None  # a cancel's
    idempotency_id: str | None = None  # the key record of the request that claimed it (None: reconciliation)

    def gateway_key(self, payment_id: str) -> str:
        """The gateway's idempotency key for it: one per payment, kind and amount, so it is never sent twice (a
        claim the gateway refused may be followed by one of another amount, which must not meet that key's 422)."""
        return f"{payment_id}:{self.kind.value}" + (f":{self.amount}" if self.kind is ActionKind.CAPTURE else "")


class RefundStatus(str, Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the gateway never made it: its reservation is released


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
    # Where the entry sits in its merchant's hash chains (lambdas.domain.chains): set when it is written.
    chain: int | None = None
    sequence: int | None = None
    hash: str | None = None
    settlement_id: str | None = None  # the settlement that paid out this capture or refund (its fee and net)


def movement_of(entry: Entry) -> tuple[str, str | None, str | None]:
    """The movement an entry books, which its entries balance: the payment's capture, one of its refunds, or the
    settlement of either (the service writes each movement's entries together). A new kind of movement names its own
    key here."""
    return entry.payment_id, entry.refund_id, entry.settlement_id


def _transfer(
    payment_id: str, debit: str, credit: str, amount: int, currency: str, now: datetime, refund_id: str | None = None
) -> list[Entry]:
    return [
        Entry(new_id("le"), payment_id, debit, Direction.DEBIT, amount, currency, now, refund_id),
        Entry(new_id("le"), payment_id, credit, Direction.CREDIT, amount, currency, now, refund_id),
    ]


class IllegalTransition(Exception):
    """A state change the object's status does not allow (a bug, not a client error)."""


@dataclass(frozen=True)
class Refund:
    id: str
    payment_id: str
    amount: int
    created_at: datetime
    status: RefundStatus = RefundStatus.PENDING
    gateway_refund_id: str | None = None
    idempotency_id: str | None = None  # the key record of the request that made it

    def succeed(self, gateway_refund_id: str) -> "Refund":
        if self.status is not RefundStatus.PENDING:
            raise IllegalTransition(f"{self.id} is {self.status.value}")
        return replace(self, status=RefundStatus.SUCCEEDED, gateway_refund_id=gateway_refund_id)

    def fail(self) -> "Refund":
        if self.status is not RefundStatus.PENDING:
            raise IllegalTransition(f"{self.id} is {self.status.value}")
        return replace(self, status=RefundStatus.FAILED)


@dataclass(frozen=True)
class Payment:
    id: str
    amount: int
    currency: str
    card: MaskedCard
    created_at: datetime
    status: Status = Status.PENDING  # stored lifecycle: pending, succeeded, declined or failed
    amount_refunded: int = 0  # succeeded refunds
    amount_reserved: int = 0  # pending refunds
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    charge_id: str | None = None
    decline_code: str | None = None
    idempotency_id: str | None = None  # the key record of the request that made it
    capture: bool = True  # False: an authorisation, captured (or cancelled) later
    amount_captured: int = 0
    cancellation_reason: CancellationReason | None = None
    action: Action | None = None  # an authorisation's claimed capture or cancel

    @property
    def display_status(self) -> Status:
        """The contract's status: a captured payment shows how much of it was refunded."""
        if self.status is not Status.SUCCEEDED or self.amount_refunded == 0:
            return self.status
        return Status.REFUNDED if self.amount_refunded == self.amount_captured else Status.PARTIALLY_REFUNDED

    @property
    def amount_capturable(self) -> int:
        return self.amount if self.status is Status.REQUIRES_CAPTURE else 0

    @property
    def capture_before(self) -> datetime | None:
        """An authorisation's expiry: reconciliation cancels it when it has not been captured by then."""
        return None if self.capture else self.created_at + AUTHORIZATION_VALIDITY

    @property
    def refundable_amount(self) -> int:
        """What is left to refund: the capture less succeeded and pending refunds."""
        if self.status is not Status.SUCCEEDED:
            return 0
        return self.amount_captured - self.amount_refunded - self.amount_reserved

    def _require(self, status: Status) -> None:
        if self.status is not status:
            raise IllegalTransition(f"{self.id} is {self.status.value}")

    def succeed(self, charge_id: str, now: datetime) -> tuple["Payment", list[Entry]]:
        """Charged by the gateway: the gateway now owes the merchant the amount."""
        self._require(Status.PENDING)
        if not self.capture:
            raise IllegalTransition(f"{self.id} is an authorisation")
        captured = replace(self, status=Status.SUCCEEDED, charge_id=charge_id, amount_captured=self.amount)
        return captured, _transfer(self.id, RECEIVABLE, MERCHANT, self.amount, self.currency, now)

    def authorize(self, charge_id: str, now: datetime) -> tuple["Payment", list[Entry]]:
        """Authorised by the gateway: the amount is held on the card until it is captured, cancelled or expires."""
        self._require(Status.PENDING)
        if self.capture:
            raise IllegalTransition(f"{self.id} is a charge")
        authorized = replace(self, status=Status.REQUIRES_CAPTURE, charge_id=charge_id)
        return authorized, _transfer(self.id, HOLD, HOLD_OFFSET, self.amount, self.currency, now)

    def claim(self, action: Action) -> "Payment":
        """Claim ``action`` on this authorisation (``InvalidRequest`` when it cannot take it)."""
        if self.status is not Status.REQUIRES_CAPTURE or self.action is not None:
            shown = "being captured or canceled" if self.action else self.display_status.value
            raise InvalidRequest(
                f"Payment {self.id} is {shown}; only a payment that requires capture can be {action.kind.done} (once).",
                None,
                action.kind.refusal,
            )
        if action.kind is ActionKind.CAPTURE:
            if self.capture_before is not None and action.started_at >= self.capture_before:
                raise InvalidRequest(
                    f"Payment {self.id}'s authorisation expired at {self.capture_before:%Y-%m-%dT%H:%M:%SZ}.",
                    None,
                    action.kind.refusal,
                )
            if not 0 < action.amount <= self.amount_capturable:
                raise InvalidRequest(f"At most {self.amount_capturable} can be captured.", "amount", "amount_too_large")
        return replace(self, action=action)

    def capture_amount(self, amount: int, now: datetime) -> tuple["Payment", list[Entry]]:
        """Captured by the gateway: the hold is reversed in full and the captured amount booked as a charge's."""
        self._require(Status.REQUIRES_CAPTURE)
        if not 0 < amount <= self.amount:
            raise IllegalTransition(f"{self.id}: a capture of {amount} from {self.amount}")
        captured = replace(self, status=Status.SUCCEEDED, amount_captured=amount, action=None)
        return captured, [
            *self._release_hold(now),
            *_transfer(self.id, RECEIVABLE, MERCHANT, amount, self.currency, now),
        ]

    def cancel(self, reason: CancellationReason, now: datetime) -> tuple["Payment", list[Entry]]:
        """Voided at the gateway, or expired there: the hold is reversed in full."""
        self._require(Status.REQUIRES_CAPTURE)
        canceled = replace(self, status=Status.CANCELED, cancellation_reason=reason, action=None)
        return canceled, self._release_hold(now)

    def _release_hold(self, now: datetime) -> list[Entry]:
        return _transfer(self.id, HOLD_OFFSET, HOLD, self.amount, self.currency, now)

    def decline(self, decline_code: str, charge_id: str | None = None) -> "Payment":
        self._require(Status.PENDING)
        return replace(self, status=Status.DECLINED, decline_code=decline_code, charge_id=charge_id)

    def fail(self) -> "Payment":
        self._require(Status.PENDING)
        return replace(self, status=Status.FAILED)

    def check_refund(self, amount: int | None) -> int:
        """The amount a refund of ``amount`` (None: all that is left) would return."""
        if self.status is not Status.SUCCEEDED:
            raise InvalidRequest(
                f"Payment {self.id} is {self.status.value}; only succeeded payments can be refunded.",
                "amount",
                "payment_not_refundable",
            )
        amount = self.refundable_amount if amount is None else amount
        if not 0 < amount <= self.refundable_amount:
            raise InvalidRequest(f"At most {self.refundable_amount} can be refunded.", "amount", "amount_too_large")
        return amount

    def reserve_refund(
        self, refund_id: str, amount: int | None, now: datetime, idempotency_id: str | None = None
    ) -> tuple["Payment", Refund]:
        """Hold ``amount`` (None: all that is left) for a refund the gateway is about to be asked for."""
        amount = self.check_refund(amount)
        reserved = replace(self, amount_reserved=self.amount_reserved + amount)
        return reserved, Refund(refund_id, self.id, amount, now, idempotency_id=idempotency_id)

    def complete_refund(
        self, refund: Refund, gateway_refund_id: str, now: datetime
    ) -> tuple["Payment", Refund, list[Entry]]:
        """The gateway made the refund: reversing entries; the old ones stay as they are."""
        done = refund.succeed(gateway_refund_id)
        refunded = replace(
            self,
            amount_refunded=self.amount_refunded + refund.amount,
            amount_reserved=self.amount_reserved - refund.amount,
        )
        entries = _transfer(self.id, MERCHANT, RECEIVABLE, refund.amount, self.currency, now, refund.id)
        return refunded, done, entries

    def cancel_refund(self, refund: Refund) -> tuple["Payment", Refund]:
        """The gateway never made the refund: its reservation is free again."""
        return replace(self, amount_reserved=self.amount_reserved - refund.amount), refund.fail()


def balance(entries: list[Entry]) -> dict[str, int]:
    """Net debit-minus-credit per account; a balanced ledger sums to zero."""
    totals: dict[str, int] = {}
    for entry in entries:
        sign = 1 if entry.direction is Direction.DEBIT else -1
        totals[entry.account] = totals.get(entry.account, 0) + sign * entry.amount
    return totals
