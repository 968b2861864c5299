"""``python -m client listen``: the merchant's events on a local port, as ``stripe listen`` does for Stripe.

It binds an HTTP receiver to ``127.0.0.1:<port>``, registers a webhook endpoint for it (``http://127.0.0.1:<port>/``,
which only ``make local`` accepts; deployed, ``--public-url`` names a tunnel to the port), verifies each delivery
with ``verify_webhook``, prints one line per event, and with ``--forward-to`` passes each verified delivery on, body
and signature as received, answering the service with the forward's outcome (so a failing app is retried). The
endpoint is deleted when it stops (Ctrl-C, or SIGTERM)."""

import contextlib
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import TextIO, cast

import requests

from client.client import PaymentsClient
from client.errors import WebhookError
from client.models import WebhookEndpoint
from client.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_webhook

DEFAULT_PORT = 4242
MAX_BODY_BYTES = 1 << 20  # an event is a few KiB
FORWARD_TIMEOUT_SECONDS = 10.0  # as the service waits for a receiver


class Listener:
    """A receiver on ``127.0.0.1:port`` (0: any free port) and the endpoint registered for it, from ``with`` to
    its end; ``serve`` until ``stop``."""

    def __init__(
        self,
        client: PaymentsClient,
        port: int = DEFAULT_PORT,
        events: tuple[str, ...] = ("*",),
        forward_to: str | None = None,
        public_url: str | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
        forwarder: requests.Session | None = None,
    ) -> None:
        self.client, self.events, self.forward_to = client, events, forward_to
        self.out, self.err = out or sys.stdout, err or sys.stderr  # events on one, everything else on the other
        self.forwarder = forwarder or requests.Session()
        self.server = _Server(("127.0.0.1", port), _Receiver)
        self.server.listener = self
        self.url = public_url or f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.endpoint: WebhookEndpoint | None = None
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> "Listener":
        try:
            self.endpoint = self.client.create_webhook_endpoint(self.url, self.events)
        except BaseException:
            self.server.server_close()
            raise
        self.err.write(f"Ready: {self.endpoint.id} receives {', '.join(self.events)} at {self.url}; its signing "
                       f"secret is {self.endpoint.secret} (Ctrl-C stops and deletes it)\n")  # fmt: skip
        self.err.flush()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.server.server_close()
        if self.endpoint is not None:
            self.client.delete_webhook_endpoint(self.endpoint.id)
            self.err.write(f"Deleted {self.endpoint.id}\n")

    def serve(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        """Ends ``serve`` (from another thread)."""
        self.server.shutdown()

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        """The status to answer a delivery with: ``400`` unless it verifies; then ``200``, or with ``forward_to``
        ``200`` only if the forward got a ``2xx`` (else ``502``, and the service tries again)."""
        assert self.endpoint is not None and self.endpoint.secret is not None  # set by __enter__
        try:
            event = verify_webhook(body, headers.get(SIGNATURE_HEADER, ""), self.endpoint.secret)
        except WebhookError as refused:
            self._write(self.err, f"refused a delivery: {refused}")
            return 400
        with self._lock:
            again = event.id in self._seen
            self._seen.add(event.id)
        line = f"{event.type} {event.id} {event.object_id}" + (" (again)" if again else "")
        status = 200
        if self.forward_to is not None:
            status, outcome = self._forward(body, headers)
            line += f" -> {self.forward_to} {outcome}"
        self._write(self.out, line)
        return status

    def _forward(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """The body and its signature as received, so the app verifies them itself with the endpoint's secret."""
        sent = {name: headers[name] for name in (SIGNATURE_HEADER, EVENT_ID_HEADER) if name in headers}
        try:
            answer = self.forwarder.post(
                self.forward_to or "",
                data=body,
                headers={"Content-Type": "application/json", **sent},
                timeout=FORWARD_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException as failed:
            return 502, type(failed).__name__
        return (200 if 200 <= answer.status_code < 300 else 502), str(answer.status_code)

    def _write(self, stream: TextIO, line: str) -> None:
        with self._lock:
            stream.write(line + "\n")
            stream.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    listener: Listener


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not length.isascii() or not length.isdigit():
            self._answer(411)
        elif int(length) > MAX_BODY_BYTES:
            self._answer(413)
        else:
            body = self.rfile.read(int(length))
            headers = {name: self.headers[name] for name in (SIGNATURE_HEADER, EVENT_ID_HEADER) if name in self.headers}
            self._answer(cast(_Server, self.server).listener.receive(body, headers))

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # the listener prints its own lines
        pass


def listen(
    client: PaymentsClient,
    port: int = DEFAULT_PORT,
    events: tuple[str, ...] = ("*",),
    forward_to: str | None = None,
    public_url: str | None = None,
) -> None:
    """Receives and prints events until Ctrl-C (or SIGTERM), then deletes the endpoint."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Listener(client, port, events, forward_to, public_url) as listener, contextlib.suppress(KeyboardInterrupt):
            listener.serve()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signal_number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
