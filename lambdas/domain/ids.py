"""Identifiers with a type prefix: tok_, pay_, re_, le_."""

import re
import secrets

ID_HEX_DIGITS = 24


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(ID_HEX_DIGITS // 2)}"


def is_id(prefix: str, text: str) -> bool:
    """Whether ``text`` is shaped like an id the service made: anything else is unknown without a read (and never
    reaches a key, whose size DynamoDB limits)."""
    return re.fullmatch(rf"{prefix}_[0-9a-f]{{{ID_HEX_DIGITS}}}", text) is not None
