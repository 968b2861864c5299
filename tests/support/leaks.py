"""Card data that must never appear outside memory, and the scanners that look for it."""

import json
import re
import unicodedata

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

# How people write a card number: its digits run together, or in groups parted by one of these (the same between
# every two groups): runs of up to three spaces of any kind (tabs, line breaks and no-break spaces too); a dash of
# any kind (hyphen, en and em dash, minus sign), dot or slash, with spaces around it or not ...
SEPARATORS = (
    "", " ", "  ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u202f", "\u3000",
    "-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", ".", "/",
    " - ", "  -  ", " \u2013 ", " \u2014 ", " . ", " / ",
)  # fmt: skip
# ... in groups of four, or of these sizes for a number of this length (Amex 4-6-5, Diners 4-6-4).
GROUPINGS = {15: ((4, 6, 5),), 14: ((4, 6, 4),)}

# How the scanner reads text, written here rather than taken from lambdas/domain/cards.py (so that it checks the
# code instead of repeating it), and looser than any list of spellings: digits (of any script) with up to five of
# these characters between each two, in any mix and any grouping, whose digits hold a test PAN.
_SPACES = " \t\n\v\f\r\x1c-\x1f\x85\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # str.isspace()
_MARKS = "\\-\u2010-\u2015\u2212./"  # dashes (hyphen to horizontal bar, minus sign), dot, slash
_DIGITS_PARTED = re.compile(rf"\d(?:[{_SPACES}{_MARKS}]{{0,5}}\d)*")
# A body or a log line is JSON: a tab, a line break or a non-ASCII separator in it is written as an escape.
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|([ntr]))")


def _groups(pan: str, sizes: tuple[int, ...]) -> list[str]:
    starts = [sum(sizes[:n]) for n in range(len(sizes))]
    return [pan[start : start + size] for start, size in zip(starts, sizes, strict=True)]


def spellings(pan: str) -> set[str]:
    """Every usual spelling of ``pan``: run together, or grouped and parted by each separator."""
    in_fours = tuple(min(4, len(pan) - start) for start in range(0, len(pan), 4))
    groupings = (*GROUPINGS.get(len(pan), ()), in_fours)
    return {separator.join(_groups(pan, sizes)) for separator in SEPARATORS for sizes in groupings}


def _unescaped(text: str) -> str:
    return _JSON_ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else {"n": "\n", "t": "\t", "r": "\r"}[m[2]], text)


def card_data_in(text: str) -> list[str]:
    """The test PANs (in any usual spelling, JSON-escaped or not) and CVC fields found in ``text``."""
    runs = ("".join(str(unicodedata.decimal(c)) for c in run if c.isdecimal())
            for run in _DIGITS_PARTED.findall(_unescaped(text)))  # fmt: skip
    found = sorted({pan for digits in runs for pan in TEST_PANS if pan in digits})
    found += [m.group(0) for m in re.finditer(r'(?i)"?cvc"?\s*[:=]\s*"?\d{3,4}', text)]
    return found


def card_data_in_item(item: dict) -> list[str]:
    """Scan a DynamoDB item (typed JSON), binary values included, for card data."""
    text = json.dumps(item, default=lambda value: bytes(value).decode("latin-1"))
    found = card_data_in(text)
    found += [f"field equal to CVC {cvc}" for cvc in TEST_CVCS if re.search(rf'"[SN]": "{cvc}"', text)]
    return found
