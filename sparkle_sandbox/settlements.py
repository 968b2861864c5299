"""The sandbox's settlements: what Sparkle paid out, line by line, less its fees.

A settlement covers each succeeded capture and refund once, in the first settlement made after it; one settlement
per currency. A charge line's ``fee`` is 2.9 % of its ``amount`` rounded half up, plus 30 minor units; a refund line's
``amount`` is negative and costs no fee. Not thread-safe: the caller holds its lock.
"""

import secrets
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

FEE_RATE = Decimal("0.029")
FEE_FIXED = 30
MAX_LINES_PER_PAGE = 100
UNKNOWN_LINE_AMOUNT = 1000  # an unknown line's amount: a charge nobody made
DEFAULT_CURRENCY = "USD"  # the currency of unknown lines when nothing else is settled


def fee(line_type: str, amount: int) -> int:
    """What Sparkle keeps for a line: 2.9 % of a charge, rounded half up, plus 30; nothing for anything else."""
    if line_type != "charge":
        return 0
    return int((Decimal(amount) * FEE_RATE).quantize(Decimal(1), rounding=ROUND_HALF_UP)) + FEE_FIXED


@dataclass(frozen=True)
class Settleable:
    """A succeeded capture or refund, as a settlement line would show it (a refund's amount is negative)."""

    type: str  # "charge" or "refund"
    id: str  # the charge's or refund's id: what is settled once
    charge: str
    refund: str | None
    reference: str
    amount: int
    currency: str


@dataclass
class Faults:
    """``drop``: references left unsettled; ``adjust``: minor units added to those references' lines; ``unknown``:
    that many charge lines for a reference and charge nobody knows."""

    drop: frozenset[str] = frozenset()
    adjust: dict[str, int] = field(default_factory=dict)
    unknown: int = 0


class Settlements:
    def __init__(self) -> None:
        self.settlements: list[dict] = []  # oldest first
        self.lines: dict[str, list[dict]] = {}  # by settlement id
        self.settled: set[str] = set()  # ids of the charges and refunds some settlement covered

    def clear(self) -> None:
        self.settlements.clear()
        self.lines.clear()
        self.settled.clear()

    def settle(self, items: list[Settleable], faults: Faults, now: int) -> list[dict]:
        """Settle everything in ``items`` not yet settled (save what ``faults`` drops), one settlement per currency;
        the settlements made, none when there was nothing to settle."""
        by_currency: dict[str, list[dict]] = {}
        for item in items:
            if item.id in self.settled or item.reference in faults.drop:
                continue
            by_currency.setdefault(item.currency, []).append(_line(item, faults.adjust.get(item.reference, 0)))
            self.settled.add(item.id)
        if faults.unknown:
            unknown_currency = next(iter(by_currency), DEFAULT_CURRENCY)
            by_currency.setdefault(unknown_currency, []).extend(
                _unknown_line(unknown_currency) for _ in range(faults.unknown)
            )
        return [self._made(currency, lines, now) for currency, lines in by_currency.items()]

    def _made(self, currency: str, lines: list[dict], now: int) -> dict:
        gross, fees = sum(line["amount"] for line in lines), sum(line["fee"] for line in lines)
        settlement = {
            "id": f"st_{secrets.token_hex(12)}",
            "currency": currency,
            "created": now,
            "gross": gross,
            "fees": fees,
            "net": gross - fees,
            "lines": len(lines),
        }
        self.settlements.append(settlement)
        self.lines[settlement["id"]] = lines
        return dict(settlement)

    def listed(self, created_after: int) -> list[dict]:
        """The settlements created after ``created_after`` (unix seconds), oldest first."""
        return [dict(settlement) for settlement in self.settlements if settlement["created"] > created_after]

    def page(self, settlement_id: str, starting_after: str | None, limit: int) -> tuple[list[dict], bool] | None:
        """Up to ``limit`` lines after the line ``starting_after`` (from the first when None) and whether more
        follow; None when there is no such settlement. ``KeyError`` when ``starting_after`` is not one of its lines."""
        lines = self.lines.get(settlement_id)
        if lines is None:
            return None
        start = 0
        if starting_after is not None:
            start = next((n + 1 for n, line in enumerate(lines) if line["id"] == starting_after), -1)
            if start < 0:
                raise KeyError(starting_after)
        page = lines[start : start + limit]
        return [dict(line) for line in page], start + limit < len(lines)


def _line(item: Settleable, adjustment: int) -> dict:
    amount = item.amount + adjustment
    return {
        "id": f"sl_{secrets.token_hex(12)}",
        "type": item.type,
        "charge": item.charge,
        "refund": item.refund,
        "reference": item.reference,
        "amount": amount,
        "fee": fee(item.type, amount),
        "currency": item.currency,
    }


def _unknown_line(currency: str) -> dict:
    unknown = Settleable(
        "charge", "", f"ch_{secrets.token_hex(12)}", None, f"pay_{secrets.token_hex(8)}", UNKNOWN_LINE_AMOUNT, currency
    )
    return _line(unknown, 0)
