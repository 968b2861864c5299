"""Card data that must never appear outside memory, and the scanners that look for it."""

import json
import re

# Every card number the tests send (sandbox test cards and others), and the CVCs they send.
TEST_PANS = (
    "4242424242424242", "5555555555554444", "378282246310005", "4000000000000002", "4000000000009995",
    "4000000000000069", "4000000000000127", "4000000000000119", "4000000000003220", "6011111111111117",
)  # fmt: skip
TEST_CVCS = ("737", "7373")


def _variants(pan: str) -> set[str]:
    return {pan, " ".join(pan[i : i + 4] for i in range(0, len(pan), 4)), "-".join(pan[i : i + 4] for i in range(0, len(pan), 4))}


def card_data_in(text: str) -> list[str]:
    """The test PANs (in any usual spelling) and CVC fields found in ``text``."""
    found = [pan for pan in TEST_PANS for variant in _variants(pan) if variant in text]
    found += [m.group(0) for m in re.finditer(r'(?i)"?cvc"?\s*[:=]\s*"?\d{3,4}', text)]
    return found


def card_data_in_item(item: dict) -> list[str]:
    """Scan a DynamoDB item (typed JSON), binary values included, for card data."""
    text = json.dumps(item, default=lambda value: bytes(value).decode("latin-1"))
    found = card_data_in(text)
    found += [f"field equal to CVC {cvc}" for cvc in TEST_CVCS if re.search(rf'"[SN]": "{cvc}"', text)]
    return found
