"""Settlements: what the gateway paid out, matched line by line against the ledger.

A succeeded capture or refund leaves the gateway owing the merchant (``gateway_receivable:sparkle``): that is what
the ledger *expects* a settlement to list, once. A settlement line that matches its expected movement (same
reference, currency and amount) books its fee (``gateway_fees`` against the receivable) and moves its net amount
from the receivable to ``bank``: balanced entries of their own movement (the payment, the refund, the settlement)
on the payment's chain. A line that differs is a mismatch of the merchant that owns the reference, booked nowhere;
a line nobody's ledger knows is the operator's (``unknown_reference``), never a merchant's. An expected movement
that no settlement listed ``NOT_SETTLED_AFTER`` after it succeeded is a ``not_settled`` mismatch."""

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from lambdas.domain.ids import is_id, new_id
from lambdas.domain.payments import RECEIVABLE, Direction, Entry

BANK = "bank"  # what the gateway paid out, net of its fees
GATEWAY_FEES = "gateway_fees"  # what the gateway kept for its lines
NOT_SETTLED_AFTER = timedelta(days=3)  # a succeeded capture or refund no settlement listed within this: a mismatch
# A settlement line's type: a capture ("charge"), a refund (its amount negative), or the gateway's own adjustment.
SETTLEMENT_LINE_TYPES = ("charge", "refund", "adjustment")


def is_settlement_id(text: str) -> bool:
    """Whether ``text`` is shaped like a settlement id of the gateway's: the client refuses a settlement listed with
    any other, so every settlement imported is one GET /settlements/{id} reads, and nothing else reaches a key or a
    URL path."""
    return re.fullmatch(r"st_[A-Za-z0-9]{1,64}", text) is not None


@dataclass(frozen=True)
class Settlement:
    """What the gateway paid out in one currency: ``net`` = ``gross`` - ``fees``, over ``lines`` lines."""

    id: str
    currency: str
    created: int  # unix seconds on the gateway's clock
    gross: int  # the sum of its lines' amounts
    fees: int  # the sum of its lines' fees
    net: int
    lines: int

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.created, UTC)


@dataclass(frozen=True)
class SettlementLine:
    """One capture, refund or adjustment in a settlement; ``fee`` is what the gateway kept for it."""

    id: str
    type: str  # one of SETTLEMENT_LINE_TYPES
    charge_id: str | None
    refund_id: str | None
    reference: str | None  # the payment's or refund's reference, as the service sent it
    amount: int  # a capture's amount, a refund's negated
    fee: int
    currency: str


class MismatchReason(StrEnum):
    AMOUNT_DIFFERS = "amount_differs"
    CURRENCY_DIFFERS = "currency_differs"
    NOT_SETTLED = "not_settled"  # succeeded, and no settlement listed it within NOT_SETTLED_AFTER
    UNKNOWN_REFERENCE = "unknown_reference"  # the operator's: no merchant's ledger knows the line's reference


class ShareStatus(StrEnum):
    RECONCILED = "reconciled"
    MISMATCHED = "mismatched"


@dataclass(frozen=True)
class Expected:
    """A succeeded capture or refund as a settlement should list it: what the ledger says the gateway owes for it."""

    reference: str  # the payment's id (a capture) or the refund's (a refund): the line's reference
    payment_id: str
    refund_id: str | None
    amount: int  # signed as the line's: a capture's positive, a refund's negative
    currency: str
    succeeded_at: datetime
    gateway_id: str | None = None  # the gateway's charge id (a capture) or refund id (a refund)
    settled_by: str | None = None  # the line that settled it (``line_key``), once one did
    listed_by: str | None = None  # the first line that named it but differed (a mismatch): it was listed

    @property
    def line_type(self) -> str:
        """The type of the line that settles it."""
        return "refund" if self.refund_id else "charge"


def expected_of(entry: Entry) -> Expected | None:
    """The movement ``entry`` tells the gateway owes for, when it is one: a capture's debit of the receivable or a
    refund's credit of it (each movement has exactly one such entry); None for any other entry, a settlement's
    included. Its gateway id is the payment's or refund's, which the entry does not carry."""
    if entry.account != RECEIVABLE or entry.settlement_id is not None:
        return None
    amount = entry.amount if entry.direction is Direction.DEBIT else -entry.amount
    reference = entry.refund_id or entry.payment_id
    return Expected(reference, entry.payment_id, entry.refund_id, amount, entry.currency, entry.created_at)


def names(line: SettlementLine, expected: Expected) -> bool:
    """Whether ``line`` names the movement: its reference, its type and the gateway's id of it. A line that names a
    reference with another type or gateway id is no merchant's (an adjustment never is)."""
    gateway_id = line.refund_id if line.type == "refund" else line.charge_id
    return (
        line.reference == expected.reference
        and line.type == expected.line_type
        and (expected.gateway_id is None or gateway_id == expected.gateway_id)
    )


def is_reference(text: str | None) -> bool:
    """Whether a line's reference is shaped like one the service sends (a payment's or a refund's id): anything else
    names no merchant's movement, without a read."""
    return text is not None and (is_id("pay", text) or is_id("re", text))


def line_key(settlement_id: str, line_id: str) -> str:
    return f"{settlement_id}/{line_id}"


@dataclass(frozen=True)
class Mismatch:
    """Where a settlement and the ledger disagree, with what each side says (None: that side says nothing)."""

    reference: str | None
    gateway_line: str | None  # the line's id (None: a movement no line listed)
    reason: MismatchReason
    ledger_amount: int | None
    gateway_amount: int | None
    ledger_currency: str | None = None
    gateway_currency: str | None = None


def compare(settlement: Settlement, line: SettlementLine, expected: Expected) -> Mismatch | None:
    """How ``line`` of ``settlement`` disagrees with the movement it names (None: it matches). A movement another line
    settled already is owed nothing more: a second line for it always differs, by its whole amount."""
    settled_elsewhere = expected.settled_by not in (None, line_key(settlement.id, line.id))
    ledger_amount = 0 if settled_elsewhere else expected.amount
    if line.currency != expected.currency or line.currency != settlement.currency:
        reason = MismatchReason.CURRENCY_DIFFERS
    elif settled_elsewhere or line.amount != ledger_amount:
        reason = MismatchReason.AMOUNT_DIFFERS
    else:
        return None
    return Mismatch(line.reference, line.id, reason, ledger_amount, line.amount, expected.currency, line.currency)


def unknown(line: SettlementLine) -> Mismatch:
    """The operator's mismatch of a line whose reference no merchant's ledger knows."""
    return Mismatch(line.reference, line.id, MismatchReason.UNKNOWN_REFERENCE, None, line.amount, None, line.currency)


def not_settled(expected: Expected) -> Mismatch:
    return Mismatch(
        expected.reference, None, MismatchReason.NOT_SETTLED, expected.amount, None, expected.currency, None
    )


def settlement_entries(settlement_id: str, line: SettlementLine, expected: Expected, now: datetime) -> list[Entry]:
    """A matched line's entries: its fee from the receivable to ``gateway_fees``, and the rest from the receivable to
    ``bank`` (the other way round for a refund, which the gateway takes back). Nothing for a zero amount."""
    entries: list[Entry] = []

    def move(debit: str, credit: str, amount: int) -> None:
        if amount < 0:
            debit, credit, amount = credit, debit, -amount
        if amount:
            for account, direction in ((debit, Direction.DEBIT), (credit, Direction.CREDIT)):
                entries.append(
                    Entry(
                        new_id("le"),
                        expected.payment_id,
                        account,
                        direction,
                        amount,
                        line.currency,
                        now,
                        expected.refund_id,
                        settlement_id=settlement_id,
                    )
                )

    move(GATEWAY_FEES, RECEIVABLE, line.fee)
    move(BANK, RECEIVABLE, line.amount - line.fee)
    return entries


@dataclass(frozen=True)
class ShareLine:
    """One line of a settlement in a merchant's share: matched (``mismatch`` None), or a mismatch."""

    line_id: str
    reference: str | None
    amount: int
    fee: int
    mismatch: Mismatch | None = None

    @classmethod
    def of(cls, settlement: Settlement, line: SettlementLine, mismatch: Mismatch | None) -> "ShareLine":
        """``line`` in a share of ``settlement``: a line in another currency adds nothing to the share's totals."""
        foreign = line.currency != settlement.currency
        return cls(line.id, line.reference, 0 if foreign else line.amount, 0 if foreign else line.fee, mismatch)


@dataclass(frozen=True)
class Share:
    """A merchant's share of one settlement: its lines' totals, and its mismatches (a listing carries only their
    count). ``complete`` once every line of the settlement was imported: only then is it shown."""

    settlement_id: str
    currency: str
    created_at: datetime  # the settlement's
    gross: int = 0
    fees: int = 0
    lines: int = 0
    mismatch_count: int = 0
    mismatches: tuple[Mismatch, ...] = ()
    complete: bool = False

    @property
    def net(self) -> int:
        return self.gross - self.fees

    @property
    def status(self) -> ShareStatus:
        return ShareStatus.MISMATCHED if self.mismatch_count else ShareStatus.RECONCILED

    def with_line(self, line: ShareLine) -> "Share":
        """The share after ``line`` is added to it."""
        mismatched = line.mismatch is not None
        return replace(
            self,
            gross=self.gross + line.amount,
            fees=self.fees + line.fee,
            lines=self.lines + 1,
            mismatch_count=self.mismatch_count + mismatched,
            mismatches=(*self.mismatches, line.mismatch) if line.mismatch else self.mismatches,
        )

    def with_mismatch(self, mismatch: Mismatch) -> "Share":
        """The share after a mismatch no line brought (``not_settled``) is added to it."""
        return replace(self, mismatch_count=self.mismatch_count + 1, mismatches=(*self.mismatches, mismatch))
