"""Webhook requests over HTTPS (``lambdas.ports.WebhookSender``), pinned to a checked address.

The URL's host is resolved and every address checked (``lambdas.domain.webhooks.UrlPolicy``) right before the
request, and the connection is made to the first checked address, with the host name kept for TLS (SNI and the
certificate's name) and the ``Host`` header: the name is not resolved again, so an answer that changes between the
check and the connection (DNS rebinding) cannot reach another address. Only the answer's head is read, for its
status (never its body), so no redirect can be followed (a 3xx is a failure), and the whole exchange, from connecting
to the end of the head, must end within ``TIMEOUT_SECONDS``: a receiver that answers slowly, byte by byte, is cut off
there and counts as not delivered."""

import json
import re
import socket
import ssl
import time
from typing import Any

import certifi

from lambdas.domain.events import Event
from lambdas.domain.timestamps import iso
from lambdas.domain.webhooks import Target, UrlNotAllowed, UrlPolicy
from lambdas.ports import Sent

TIMEOUT_SECONDS = 10.0
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})[ \r]")
MAX_HEAD_BYTES = 16 * 1024


class HttpWebhookSender:
    def __init__(self, policy: UrlPolicy, timeout: float = TIMEOUT_SECONDS) -> None:
        self.policy = policy
        self.timeout = timeout
        self.tls = ssl.create_default_context(cafile=certifi.where())

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> Sent:
        try:
            target = self.policy.check(url)
        except UrlNotAllowed:
            return Sent(error="address_not_allowed")
        deadline = time.monotonic() + self.timeout
        try:
            with socket.create_connection((target.addresses[0], target.port), timeout=self.timeout) as raw:
                if target.scheme == "https":
                    _until(raw, deadline)  # the handshake too
                    with self.tls.wrap_socket(raw, server_hostname=target.host) as tls:
                        return Sent(status=_exchange(tls, _request(target, body, headers), deadline))
                return Sent(status=_exchange(raw, _request(target, body, headers), deadline))
        except TimeoutError:
            return Sent(error="timeout")
        except ssl.SSLError:
            return Sent(error="tls_failed")
        except (OSError, ValueError):
            return Sent(error="connection_failed")


def _request(target: Target, body: bytes, headers: dict[str, str]) -> bytes:
    host = f"[{target.host}]" if ":" in target.host else target.host  # an IPv6 literal, bracketed
    if target.port not in (80, 443):
        host = f"{host}:{target.port}"
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def _exchange(connection: socket.socket, request: bytes, deadline: float) -> int:
    """Send ``request`` and read the answer's status line and headers, all by ``deadline`` (``TimeoutError`` after
    it); the status, the only part used."""
    _until(connection, deadline)
    connection.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer:
        if len(answer) > MAX_HEAD_BYTES:
            raise ValueError("an answer's head over the limit")
        _until(connection, deadline)
        chunk = connection.recv(4096)
        if not chunk:
            raise ConnectionError("closed before its answer's head ended")
        answer += chunk
    found = STATUS_LINE.match(answer)
    if found is None:
        raise ValueError("no status line")
    return int(found.group(1))


def _until(connection: socket.socket, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the answer took longer than a delivery may")
    connection.settimeout(left)


class SqsDeadLetters:
    """Events never delivered, as messages on the dead-letter queue: the merchant, the event's id, type and time (its
    content stays in the ledger table, where redelivery finds it)."""

    def __init__(self, sqs: Any, queue_url: str | None) -> None:
        self.sqs = sqs
        self.queue_url = queue_url

    def send(self, merchant: str, event: Event) -> None:
        if not self.queue_url:
            raise RuntimeError("no dead-letter queue is configured for webhook events")
        message = {
            "merchant": merchant,
            "event_id": event.id,
            "type": event.type.value,
            "created_at": iso(event.created_at),
        }
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))
