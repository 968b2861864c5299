"""The SDK on a flaky network, over a real socket (so ``requests`` raises what it really raises): network errors are
retried with the same idempotency key, every answer becomes a typed result or a typed error (``PaymentsError``),
and a call is bounded by its time budget (docs/api.md, client/client.py)."""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from client import AnswerLost, PaymentsClient, PaymentsError

PAYMENT = (
    b'{"id":"pay_1","status":"succeeded","amount":1999,"currency":"USD","amount_refunded":0,'
    b'"card":{"brand":"visa","last4":"4242","fingerprint":"fp"},"gateway":{"name":"sparkle","charge_id":"ch_1"},'
    b'"metadata":{},"created_at":"2026-11-27T12:00:00.000Z"}'
)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        body += conn.recv(65536)
    return head


@contextmanager
def raw_server(answers: list[Callable[[socket.socket], None]]) -> Iterator[tuple[str, list[bytes]]]:
    """A one-connection-per-request HTTP server: the n-th request is answered by ``answers[n]`` (raw bytes)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    heads: list[bytes] = []

    def serve() -> None:
        for answer in answers:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                heads.append(_read_request(conn))
                try:
                    answer(conn)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on the answer
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", heads
    finally:
        listener.close()


def full(status: bytes, body: bytes) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    return answer


def truncated(conn: socket.socket) -> None:
    """The answer's headers and the first bytes of its body, then the connection drops (a partial answer)."""
    conn.sendall(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(PAYMENT)).encode() + b"\r\n\r\n" + PAYMENT[:20]
    )


def key_of(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"idempotency-key:"):
            return line.split(b":", 1)[1].strip()
    return b""


def sdk(url: str, budget: float = 10.0) -> PaymentsClient:
    return PaymentsClient(url, auth=lambda r: r, budget_seconds=budget, sleep=lambda s: None)


def test_a_partial_answer_is_retried_with_the_same_key():
    """The connection drops in the middle of the 201's body: a network error, so the SDK asks again with the same
    key (the service replays the payment), rather than raising an untyped ``requests.ChunkedEncodingError`` that
    leaves the caller unable to tell whether the card was charged."""
    with raw_server([truncated, full(b"201 Created", PAYMENT)]) as (url, heads):
        payment = sdk(url).pay(1999, "usd", token="tok_1")
    assert payment.id == "pay_1"
    assert len(heads) == 2 and key_of(heads[0]) == key_of(heads[1]) != b""


def test_a_success_status_whose_body_is_not_json_is_a_typed_error():
    """A 200 whose body is not the contract's JSON (an HTML page from a proxy, a captive portal) is a
    ``PaymentsError``, not a ``requests.JSONDecodeError``."""
    with raw_server([full(b"200 OK", b"<html>proxy</html>")] * 20) as (url, _), pytest.raises(PaymentsError):
        sdk(url, budget=1.0).payment("pay_1")


def test_a_slow_answer_does_not_outlast_the_budget():
    """The budget bounds the call: a server that trickles its answer (a byte every 0.2 s, never idle long enough
    for the read timeout, which bounds each socket read, not the attempt) is given up on within a 1 s budget."""

    def trickle(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(PAYMENT)).encode() + b"\r\n\r\n"
        )
        deadline = time.monotonic() + 4.0
        sent = 0
        while time.monotonic() < deadline and sent < len(PAYMENT) - 1:
            conn.sendall(PAYMENT[sent : sent + 1])
            sent += 1
            time.sleep(0.2)
        conn.sendall(PAYMENT[sent:])

    with raw_server([trickle]) as (url, _):
        started = time.monotonic()
        with pytest.raises(AnswerLost) as lost:  # the outcome is unknown: the key settles it later
            sdk(url, budget=1.0).pay(1999, "usd", token="tok_1")
        elapsed = time.monotonic() - started
    assert lost.value.idempotency_key
    assert elapsed < 2.5, f"a call with a 1 s budget took {elapsed:.1f} s"


@pytest.mark.parametrize("identifier", ["..", ".", "%2e%2e", "pay_1/../../tokens"])
def test_a_dot_segment_never_leaves_the_sdk(identifier):
    """``requests`` decodes an escaped ``%2E%2E`` again, so no escaping keeps ``POST /payments/../refunds`` off the
    wire: a malformed id is refused before a connection is made."""
    not_found = b'{"error":{"type":"invalid_request_error","code":"resource_missing","message":"m","request_id":"r"}}'
    with raw_server([full(b"404 Not Found", not_found)]) as (url, heads):
        with pytest.raises(ValueError):
            sdk(url).refund(identifier, 100)
        with pytest.raises(ValueError):
            sdk(url).payment(identifier)
    assert heads == []
