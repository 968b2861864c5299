"""Card data that must never appear outside memory, and the scanners that look for it."""

import json
import re

from sparkle_sandbox.server import DECLINES, PROCESSING_ERROR_CARD, SLOW_CARD, SUCCEEDING_CARDS

# The one list of card numbers the tests send: the sandbox's test cards, and others of other brands.
TEST_PANS = (
    *SUCCEEDING_CARDS,
    *DECLINES,
    PROCESSING_ERROR_CARD,
    SLOW_CARD,
    "6011111111111117",  # discover
    "2223003122003222",  # mastercard's 2-series
    "3530111333300000",  # other (JCB)
)
TEST_CVCS = ("737", "7373")

# How people write a card number: its digits parted by one of these ...
SEPARATORS = ("", " ", "-", ".", "/", "\u00a0", "\u202f", "  ", " - ")
# ... in groups of four, or of these sizes for a number of this length (Amex 4-6-5, Diners 4-6-4).
GROUPINGS = {15: ((4, 6, 5),), 14: ((4, 6, 4),)}


def _groups(pan: str, sizes: tuple[int, ...]) -> list[str]:
    starts = [sum(sizes[:n]) for n in range(len(sizes))]
    return [pan[start : start + size] for start, size in zip(starts, sizes, strict=True)]


def spellings(pan: str) -> set[str]:
    """Every usual spelling of ``pan``: run together, or grouped and parted by each separator."""
    in_fours = tuple(min(4, len(pan) - start) for start in range(0, len(pan), 4))
    groupings = (*GROUPINGS.get(len(pan), ()), in_fours)
    return {separator.join(_groups(pan, sizes)) for separator in SEPARATORS for sizes in groupings}


_SPELLINGS = {spelling: pan for pan in TEST_PANS for spelling in spellings(pan)}


def card_data_in(text: str) -> list[str]:
    """The test PANs (in any usual spelling) and CVC fields found in ``text``."""
    found = sorted({pan for spelling, pan in _SPELLINGS.items() if spelling in text})
    found += [m.group(0) for m in re.finditer(r'(?i)"?cvc"?\s*[:=]\s*"?\d{3,4}', text)]
    return found


def card_data_in_item(item: dict) -> list[str]:
    """Scan a DynamoDB item (typed JSON), binary values included, for card data."""
    text = json.dumps(item, default=lambda value: bytes(value).decode("latin-1"))
    found = card_data_in(text)
    found += [f"field equal to CVC {cvc}" for cvc in TEST_CVCS if re.search(rf'"[SN]": "{cvc}"', text)]
    return found
