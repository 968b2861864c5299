"""Card numbers, expiry and CVC rules of the contract ("Card rules").

A ``CardNumber`` never shows its digits: ``str``/``repr`` give the masked form,
so an accidental log line or f-string cannot leak it."""

import re
from dataclasses import dataclass
from datetime import date

from lambdas.domain.errors import InvalidRequest

# Prefix ranges per brand (longest match wins): (brand, prefix_low, prefix_high).
_BRAND_RANGES = (
    ("amex", "34", "34"), ("amex", "37", "37"),
    ("visa", "4", "4"),
    ("mastercard", "51", "55"), ("mastercard", "2221", "2720"),
    ("discover", "6011", "6011"), ("discover", "644", "649"), ("discover", "65", "65"),
)  # fmt: skip


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# A run of 12–19 digits, spaced or dashed or not: the shape of a card number.
DIGIT_RUN_SHAPE = r"(?:\d[ -]?){11,18}\d"
DIGIT_RUN = re.compile(rf"(?<!\d){DIGIT_RUN_SHAPE}(?!\d)")


def contains_card_number(text: str) -> bool:
    """True when free text holds what could be a card number (a Luhn-valid run of 12–19 digits)."""
    return any(luhn_valid(re.sub(r"[ -]", "", m.group(0))) for m in DIGIT_RUN.finditer(text))


def refuse_card_numbers(text: str, param: str) -> None:
    """Free text is stored as given, so it must not carry a card number."""
    if contains_card_number(text):
        raise InvalidRequest("Free text must not contain a card number.", param, "card_number_in_text")


class CardNumber:
    __slots__ = ("_digits",)

    def __init__(self, raw: str, param: str = "card.number") -> None:
        digits = raw.replace(" ", "").replace("-", "") if isinstance(raw, str) else ""
        if not (digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19):
            raise InvalidRequest("The card number must be 12 to 19 digits.", param, "invalid_number")
        if not luhn_valid(digits):
            raise InvalidRequest("The card number is not valid.", param, "invalid_number")
        self._digits = digits

    @property
    def digits(self) -> str:
        return self._digits

    @property
    def last4(self) -> str:
        return self._digits[-4:]

    @property
    def brand(self) -> str:
        best = ("other", 0)
        for brand, low, high in _BRAND_RANGES:
            prefix = self._digits[: len(low)]
            if low <= prefix <= high and len(low) > best[1]:
                best = (brand, len(low))
        return best[0]

    def __repr__(self) -> str:
        return f"CardNumber(****{self.last4})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CardNumber) and other._digits == self._digits

    def __hash__(self) -> int:
        return hash(self._digits)


def check_expiry(month: int, year: int, today: date, param: str = "card") -> None:
    if not 1 <= month <= 12:
        raise InvalidRequest("The expiry month must be 1 to 12.", f"{param}.exp_month", "invalid_expiry_month")
    if not 2000 <= year <= 2100:
        raise InvalidRequest("The expiry year is not valid.", f"{param}.exp_year", "invalid_expiry_year")
    if (year, month) < (today.year, today.month):
        raise InvalidRequest("The card has expired.", f"{param}.exp_year", "expired_card")


def check_cvc(cvc: str, brand: str, param: str = "card.cvc") -> None:
    length = 4 if brand == "amex" else 3
    if not (isinstance(cvc, str) and cvc.isascii() and cvc.isdigit() and len(cvc) == length):
        raise InvalidRequest(f"The CVC must be {length} digits.", param, "invalid_cvc")


@dataclass(frozen=True)
class Card:
    """A card as the service holds it in memory: number, expiry, optional CVC."""

    number: CardNumber
    exp_month: int
    exp_year: int
    holder_name: str | None = None
    cvc: str | None = None

    def __repr__(self) -> str:
        return f"Card({self.number!r}, {self.exp_month:02d}/{self.exp_year})"


@dataclass(frozen=True)
class MaskedCard:
    """All a response or a stored item may show of a card."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str


def parse_card(number: str, exp_month: int, exp_year: int, today: date, param: str, cvc: str | None = None,
               cvc_required: bool = False, holder_name: str | None = None) -> Card:  # fmt: skip
    """A ``Card`` that passed every rule of the contract, or ``InvalidRequest`` naming the field."""
    card_number = CardNumber(number, f"{param}.number")
    check_expiry(exp_month, exp_year, today, param)
    if cvc is not None or cvc_required:
        if cvc is None:
            raise InvalidRequest("A CVC is required.", f"{param}.cvc", "missing_cvc")
        check_cvc(cvc, card_number.brand, f"{param}.cvc")
    return Card(card_number, exp_month, exp_year, holder_name, cvc)
