"""Card numbers, expiry and CVC rules of the contract ("Card rules").

A ``CardNumber`` never shows its digits: ``str``/``repr`` give the masked form,
so an accidental log line or f-string cannot leak it."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from lambdas.domain.errors import InvalidRequest


class Brand(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    OTHER = "other"


# Prefix ranges per brand (longest match wins): (brand, prefix_low, prefix_high).
_BRAND_RANGES = (
    (Brand.AMEX, "34", "34"), (Brand.AMEX, "37", "37"),
    (Brand.VISA, "4", "4"),
    (Brand.MASTERCARD, "51", "55"), (Brand.MASTERCARD, "2221", "2720"),
    (Brand.DISCOVER, "6011", "6011"), (Brand.DISCOVER, "644", "649"), (Brand.DISCOVER, "65", "65"),
)  # fmt: skip


# What a digit adds to the Luhn sum, by its position from the right: every second digit is doubled (less 9 past 9).
_LUHN_TERM = ((0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (0, 2, 4, 6, 8, 1, 3, 5, 7, 9))


def luhn_valid(digits: str) -> bool:
    return sum(_LUHN_TERM[position % 2][int(char)] for position, char in enumerate(reversed(digits))) % 10 == 0


CARD_DIGITS = range(12, 20)  # a card number has 12 to 19 digits
# The usual spellings of a card number: digits run together, or in groups parted by spaces of any kind (no-break
# spaces included), or by a dash, dot or slash with spaces around it or not.
GROUP_SEPARATOR = r"(?:\s{1,3}|\s{0,2}[./\-\u2010-\u2015\u2212]\s{0,2})"
DIGIT_RUN_SHAPE = rf"\d(?:{GROUP_SEPARATOR}?\d)*"
_DIGIT_RUN = re.compile(DIGIT_RUN_SHAPE)
_GROUP = re.compile(r"\d+")


def _card_number_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where ``text`` holds a card number: in each run of digit groups, every stretch of whole groups with
    12 to 19 digits that passes Luhn ("ref 12 4242 4242 4242 4242" holds one: the last four groups).
    Each stretch grows leftwards from its last group, so the Luhn sum grows a digit at a time: linear in the text."""
    for run in _DIGIT_RUN.finditer(text):
        groups = list(_GROUP.finditer(text, run.start(), run.end()))
        for last in range(len(groups)):
            total = count = 0
            for first in range(last, -1, -1):
                digits = groups[first].group(0)
                if count + len(digits) > CARD_DIGITS[-1]:
                    break
                for char in reversed(digits):
                    total += _LUHN_TERM[count % 2][int(char)]
                    count += 1
                if count in CARD_DIGITS and total % 10 == 0:
                    yield groups[first].start(), groups[last].end()


def contains_card_number(text: str) -> bool:
    """True when free text holds a card number in any usual spelling (Luhn-valid, 12–19 digits)."""
    return next(_card_number_spans(text), None) is not None


def mask_card_numbers(text: str, mask: str = "[masked]") -> str:
    """``text`` with every card number that ``contains_card_number`` would find replaced by ``mask``."""
    pieces, end = [], 0
    for start, stop in sorted(_card_number_spans(text)):
        if start >= end:
            pieces += [text[end:start], mask]
        end = max(end, stop)
    return "".join(pieces) + text[end:]


# A member's name longer than this is never echoed either: no name the API accepts is that long.
MAX_ECHOED_NAME = 64


def member_param(parent: str, name: str, position: int) -> str:
    """The ``param`` naming member ``name`` of the object at ``parent`` (``""``: the body itself).

    A member whose name holds a card number (or is over ``MAX_ECHOED_NAME`` characters) is named by its position
    instead, 0 for the first member as sent: ``metadata[2]``, or ``[2]`` at the top of the body, so an error never
    echoes the number."""
    if len(name) > MAX_ECHOED_NAME or contains_card_number(name):
        return f"{parent}[{position}]"
    return f"{parent}.{name}" if parent else name


def refuse_card_numbers(text: str, param: str) -> None:
    """Free text is stored as given, so it must not carry a card number."""
    if contains_card_number(text):
        raise InvalidRequest("Free text must not contain a card number.", param, "card_number_in_text")


class CardNumber:
    __slots__ = ("_digits",)

    def __init__(self, raw: str, param: str = "card.number") -> None:
        digits = raw.replace(" ", "").replace("-", "") if isinstance(raw, str) else ""
        if not (digits.isascii() and digits.isdigit() and len(digits) in CARD_DIGITS):
            message = f"The card number must be {CARD_DIGITS[0]} to {CARD_DIGITS[-1]} digits."
            raise InvalidRequest(message, param, "invalid_number")
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
    def brand(self) -> Brand:
        best = (Brand.OTHER, 0)
        for brand, low, high in _BRAND_RANGES:
            prefix = self._digits[: len(low)]
            if low <= prefix <= high and len(low) > best[1]:
                best = (brand, len(low))
        return best[0]

    def __repr__(self) -> str:
        return f"CardNumber(****{self.last4})"

    __str__ = __repr__


def check_expiry(month: int, year: int, today: date, param: str = "card") -> None:
    if not 1 <= month <= 12:
        raise InvalidRequest("The expiry month must be 1 to 12.", f"{param}.exp_month", "invalid_expiry_month")
    if not 2000 <= year <= 2100:
        raise InvalidRequest("The expiry year is not valid.", f"{param}.exp_year", "invalid_expiry_year")
    if (year, month) < (today.year, today.month):
        raise InvalidRequest("The card has expired.", f"{param}.exp_year", "expired_card")


def check_cvc(cvc: str, brand: str, param: str = "card.cvc") -> None:
    length = 4 if brand == Brand.AMEX else 3
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


def parse_card(
    number: str,
    exp_month: int,
    exp_year: int,
    today: date,
    param: str,
    cvc: str | None = None,
    cvc_required: bool = False,
    holder_name: str | None = None,
) -> Card:
    """A ``Card`` that passed every rule of the contract, or ``InvalidRequest`` naming the field."""
    card_number = CardNumber(number, f"{param}.number")
    check_expiry(exp_month, exp_year, today, param)
    if cvc is not None or cvc_required:
        if cvc is None:
            raise InvalidRequest("A CVC is required.", f"{param}.cvc", "missing_cvc")
        check_cvc(cvc, card_number.brand, f"{param}.cvc")
    return Card(card_number, exp_month, exp_year, holder_name, cvc)
