"""Webhook endpoints and their deliveries: which addresses an endpoint may reach, how a delivery is signed, and how
long an undelivered event waits before its next attempt.

An endpoint's URL must be https and name a public address, checked when it is registered and again, after
resolution, at each delivery, which then connects to the address it checked (``lambdas.adapters.webhook_sender``):
a host that resolves to a private address later (DNS rebinding) is refused, never reached."""

import hashlib
import hmac
import ipaddress
import random
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from lambdas.domain.errors import InvalidRequest
from lambdas.domain.events import EventType

MAX_ENDPOINTS = 16  # a merchant's endpoints not deleted
MAX_URL_LENGTH = 2048
ALL_EVENTS = "*"
SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "Payments-Signature"
EVENT_ID_HEADER = "Payments-Event-Id"
# Waits after each failed round of attempts (then jittered), summing to over 3 days; the round after the last wait
# that still fails sends the event to the dead-letter queue.
DEFAULT_RETRY_WAITS: tuple[timedelta, ...] = tuple(
    timedelta(minutes=minutes) for minutes in (1, 5, 15, 30, 60, 120, 240, 480, 720, 720, 720, 720, 720, 720, 720)
)
JITTER = 0.2  # each wait is drawn from [1 - JITTER, 1 + JITTER] times its nominal length


class UrlNotAllowed(InvalidRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, "url", "url_not_allowed")


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]  # EventType values, or ("*",)
    created_at: datetime
    deleted: bool = False

    def subscribes(self, event_type: EventType) -> bool:
        return not self.deleted and (ALL_EVENTS in self.events or event_type.value in self.events)


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: the endpoint's answer status, or what kept it from answering (never its body)."""

    endpoint_id: str
    at: datetime
    status: int | None = None
    error: str | None = None  # "timeout", "connection_failed", "address_not_allowed", ...

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def parse_events(events: Sequence[str]) -> tuple[str, ...]:
    """An endpoint's subscription: ``["*"]``, or distinct event types."""
    if list(events) == [ALL_EVENTS]:
        return (ALL_EVENTS,)
    known = {event_type.value for event_type in EventType}
    if not events or any(name not in known for name in events):
        raise InvalidRequest(f'events must be ["*"] or event types ({", ".join(sorted(known))}).', "events")
    return tuple(dict.fromkeys(events))


def system_resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (an address literal: itself)."""
    try:
        answers = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


def address_allowed(address: str, allow_loopback: bool = False) -> bool:
    """Whether a delivery may connect to ``address``: a global unicast address (an IPv4-mapped IPv6 address is
    judged as its IPv4 address); ``allow_loopback``: also 127.0.0.1 (`make local` only)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return address_allowed(str(ip.ipv4_mapped), allow_loopback)
        if ip.is_site_local:
            return False
        # 6to4 and Teredo carry an IPv4 address that a relay may reach: each must be allowed too
        embedded = [a for a in (ip.sixtofour, *(ip.teredo or ())) if a is not None]
        if not all(address_allowed(str(address)) for address in embedded):
            return False
    if allow_loopback and ip == ipaddress.IPv4Address("127.0.0.1"):
        return True
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)


@dataclass(frozen=True)
class Target:
    """Where a delivery connects: the URL's parts and the addresses checked for its host."""

    scheme: str
    host: str
    port: int
    path: str  # with its query
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs an endpoint may have; ``allow_loopback_http``: also ``http://127.0.0.1:<port>/`` (set by `make
    local` only, never deployed)."""

    allow_loopback_http: bool = False
    resolve: Callable[[str], list[str]] = field(default=system_resolve, compare=False)

    def check(self, url: str) -> Target:
        """The URL's target, every address its host resolves to allowed; else ``UrlNotAllowed``."""
        target = self._parsed(url)
        addresses = tuple(self.resolve(target.host))
        if not addresses:
            raise UrlNotAllowed("The url's host does not resolve.")
        local = target.scheme == "http"
        if not all(address_allowed(address, allow_loopback=local) for address in addresses):
            raise UrlNotAllowed("The url must name a public address.")
        return Target(target.scheme, target.host, target.port, target.path, addresses)

    def _parsed(self, url: str) -> Target:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UrlNotAllowed("The url is not a valid URL.") from None
        try:
            host = (parts.hostname or "").encode("idna").decode("ascii")  # the name as DNS and certificates spell it
        except UnicodeError:
            raise UrlNotAllowed("The url's host is not a valid name.") from None
        controls = any(ord(character) <= 32 or ord(character) == 127 for character in url)
        if len(url) > MAX_URL_LENGTH or not host or parts.username or parts.password or controls:
            raise UrlNotAllowed("The url must be an https URL with a host and no credentials.")
        local = parts.scheme == "http" and self.allow_loopback_http and host == "127.0.0.1" and port is not None
        if parts.scheme != "https" and not local:
            raise UrlNotAllowed("The url must use https.")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path, ())


@dataclass(frozen=True)
class RetrySchedule:
    """The waits between rounds of attempts at an undelivered event."""

    waits: tuple[timedelta, ...] = DEFAULT_RETRY_WAITS

    def next_due(self, rounds_done: int, now: datetime) -> datetime | None:
        """When the next round is due after ``rounds_done`` failed ones (None: none, the event is dead-lettered)."""
        if rounds_done > len(self.waits):
            return None
        wait = self.waits[rounds_done - 1].total_seconds() if rounds_done else 0.0
        return now + timedelta(seconds=wait * random.uniform(1 - JITTER, 1 + JITTER))

    @classmethod
    def from_setting(cls, text: str | None) -> "RetrySchedule":
        """Waits in seconds, comma-separated (the environment's ``webhook_retry_waits``); None: the default."""
        if not text:
            return cls()
        return cls(tuple(timedelta(seconds=float(part)) for part in text.split(",")))

    @property
    def total(self) -> timedelta:
        return sum(self.waits, timedelta())


PUBLIC_HTTPS = UrlPolicy()  # what every deployed function allows: https to public addresses only
