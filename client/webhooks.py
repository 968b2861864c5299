"""Verifying a webhook delivery: the ``Payments-Signature`` header, ``t=<unix seconds>,v1=<hex>``, holds the
HMAC-SHA256 under the endpoint's secret of the bytes ``"<t>." + body``. Only the raw body as received proves
anything: a body parsed and serialised again (other spacing, other key order) no longer matches."""

import hashlib
import hmac
import json
import re
import time

from client.errors import WebhookPayloadError, WebhookSignatureError
from client.models import Event

SIGNATURE_HEADER = "Payments-Signature"
EVENT_ID_HEADER = "Payments-Event-Id"
DEFAULT_TOLERANCE_SECONDS = 300  # a delivery signed longer ago than this (or this far ahead) is refused
SIGNATURE_SCHEME = "v1"


def verify_webhook(
    body: bytes | str,
    signature_header: str,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> Event:
    """The event a delivery carries, once its signature is proven: ``body`` exactly as received (a ``str`` is taken
    as its UTF-8 bytes), the ``Payments-Signature`` header, and the endpoint's secret. Raises
    ``WebhookSignatureError`` when the header is malformed, no ``v1`` value matches (each one is compared in
    constant time; several may be sent while a secret is rolled), or ``t`` is more than ``tolerance`` seconds from
    ``now``; ``WebhookPayloadError`` when a signed body is not an event."""
    if tolerance < 0:
        raise ValueError("tolerance must be a number of seconds from 0")
    raw = body.encode() if isinstance(body, str) else body
    timestamp, signatures = _parse(signature_header)
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest().encode()
    matched = False
    for signature in signatures:  # every value compared, so the time taken does not depend on which one matched
        matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise WebhookSignatureError("no_matching_signature", "No v1 signature matches this body and secret.")
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        raise WebhookSignatureError("outside_tolerance", f"The signature's time is over {tolerance} s from now.")
    try:
        parsed = json.loads(raw)
        return Event.of(parsed)
    except (ValueError, KeyError, TypeError, AttributeError) as refused:
        raise WebhookPayloadError(f"The signed body is not an event: {type(refused).__name__}.") from None


def _parse(header: str) -> tuple[str, list[bytes]]:
    """``t`` (as sent: the signature covers its text) and every ``v1`` value of the header; values of other schemes
    are left aside (a later scheme may be sent beside ``v1``)."""
    timestamps: list[str] = []
    signatures: list[bytes] = []
    for item in header.split(",") if isinstance(header, str) else ():
        name, equals, value = (part.strip() for part in item.partition("="))
        if not equals:
            raise WebhookSignatureError("malformed_header", "Each item of the header must be name=value.")
        if name == "t":
            timestamps.append(value)
        elif name == SIGNATURE_SCHEME:
            if re.fullmatch(r"[0-9a-fA-F]{64}", value) is None:
                raise WebhookSignatureError("malformed_header", "A v1 signature must be 64 hex digits.")
            signatures.append(value.lower().encode())
    if len(timestamps) != 1 or re.fullmatch(r"[0-9]{1,12}", timestamps[0]) is None:
        raise WebhookSignatureError("malformed_header", "The header must hold one t= of whole seconds.")
    if not signatures:
        raise WebhookSignatureError("malformed_header", "The header holds no v1 signature.")
    return timestamps[0], signatures
