"""A webhook receiver on 127.0.0.1 for tests of the deployed path in process, and the local delivery settings."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

from lambdas import bootstrap


class Receiver(ThreadingHTTPServer):
    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = failures  # the first requests answered 503
        self.received: list[tuple[dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))
        failing = len(self.server.received) <= self.server.failures
        self.send_response(503 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@contextmanager
def receiving(failures: int) -> Iterator[Receiver]:
    """A receiver serving until the block ends; it answers its first ``failures`` requests 503."""
    server = Receiver(failures)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def use_local_delivery(monkeypatch) -> str:
    """The local settings (tools/local.py): loopback endpoints, waits of no time, and a dead-letter queue (its URL)."""
    queue = boto3.client("sqs").create_queue(QueueName="webhook-dead-letters")["QueueUrl"]
    settings = {"WEBHOOK_LOOPBACK_HTTP": "1", "WEBHOOK_RETRY_WAITS": "0,0", "WEBHOOK_DEAD_LETTER_QUEUE": queue}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    bootstrap.adapters.cache_clear()
    return queue
