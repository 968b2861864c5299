"""Webhook deliveries over real HTTP to a receiver on 127.0.0.1 that misbehaves: it answers 500, times out, drops
the connection, or redirects; and a host whose DNS answer changes after the check (rebinding) is never reached.
Each test names the break it guards against."""

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lambdas.adapters.webhook_sender import HttpWebhookSender
from lambdas.domain.webhooks import RetrySchedule, Target, UrlPolicy
from lambdas.ports import Sent
from lambdas.use_cases.deliveries import DeliverySettings
from lambdas.use_cases.idempotency import Keyed
from lambdas.use_cases.webhooks import CreatedEndpoint, create_endpoint
from tests.support.fakes import fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.fakes_webhooks import FakeDeadLetters
from tests.support.payments import captured

pytestmark = pytest.mark.integration
TIMEOUT = 0.5


class Receiver(ThreadingHTTPServer):
    """Answers each POST as ``behaviours`` says, in turn (the last again when they run out): a status, "slow"
    (answers after the sender's timeout), "drop" (closes the connection unanswered) or "redirect"."""

    def __init__(self, *behaviours: int | str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviours = list(behaviours)
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.connections = 0

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (the sender's timeout) is what these tests make happen

    def get_request(self):  # every accepted connection
        self.connections += 1
        return super().get_request()

    def next_behaviour(self) -> int | str:
        return self.behaviours.pop(0) if len(self.behaviours) > 1 else self.behaviours[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, dict(self.headers), body))
        behaviour = self.server.next_behaviour()
        if behaviour == "drop":
            self.close_connection = True
            self.connection.close()
            return
        if behaviour == "slow":
            time.sleep(TIMEOUT * 3)
            behaviour = 200
        if behaviour == "redirect":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
        else:
            self.send_response(int(behaviour))
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"ignored")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    servers: list[Receiver] = []

    def start(*behaviours: int | str) -> Receiver:
        server = Receiver(*behaviours)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def local_sender() -> HttpWebhookSender:
    return HttpWebhookSender(UrlPolicy(allow_loopback_http=True), timeout=TIMEOUT)


def test_each_fault_is_a_failed_attempt_and_never_a_followed_redirect(receiver):
    """Breaks if a 500, a timeout, a dropped connection or a redirect counted as delivered, or a redirect were
    followed (a 3xx could point delivery anywhere)."""
    server = receiver(500, "slow", "drop", "redirect", 204)
    sender, headers = local_sender(), {"Content-Type": "application/json"}
    results = [sender.send(server.url, b"{}", headers) for _ in range(5)]
    assert results == [Sent(500), Sent(error="timeout"), Sent(error="connection_failed"), Sent(302), Sent(204)]
    assert {path for path, _, _ in server.received} == {"/hooks"}  # /elsewhere never asked


def test_a_dns_answer_that_changes_after_the_check_is_never_reached(receiver):
    """Breaks if delivery resolved the host again after checking it, or trusted the check made at registration:
    a rebinding name (public when registered, then private) must not reach the internal address."""
    server = receiver(200)
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    policy = UrlPolicy(resolve=lambda host: next(answers))
    url = f"https://rebind.example.com:{server.server_address[1]}/hooks"
    policy.check(url)  # registration: public
    assert HttpWebhookSender(policy, timeout=TIMEOUT).send(url, b"{}", {}) == Sent(error="address_not_allowed")
    assert server.connections == 0


class _Checked(UrlPolicy):
    """A policy whose check found 127.0.0.1 for receiver.example.com (as it finds a public address)."""

    def check(self, url: str) -> Target:
        return Target("http", "receiver.example.com", int(url.rsplit(":", 1)[1]), "/hooks", ("127.0.0.1",))


def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept(receiver, monkeypatch):
    """Breaks if the sender let the HTTP library resolve the name again (the rebinding window), or dropped the
    name from the Host header."""
    server = receiver(200)
    policy = _Checked()

    def no_dns(*args, **kwargs):
        if args and args[0] == "receiver.example.com":
            raise AssertionError("the host name was resolved again")
        return real_getaddrinfo(*args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert HttpWebhookSender(policy, timeout=TIMEOUT).send(
        f"http://receiver.example.com/hooks:{server.server_address[1]}", b"{}", {}
    ) == Sent(200)
    ((_, headers, _),) = server.received
    assert headers["Host"] == f"receiver.example.com:{server.server_address[1]}"


def test_every_event_reaches_a_faulty_receiver_signed_at_least_once(receiver):
    """Breaks if a fault lost an event or a retry went unsigned (a crash mid-batch: tests/test_webhooks.py)."""
    server = receiver(500, "slow", "drop", 200)
    world = fake_world(FakeGateway())
    local = UrlPolicy(allow_loopback_http=True)
    world.deps = replace(world.deps, webhook_urls=local)
    made = create_endpoint(world.deps, server.url, ["*"], Keyed("k", lambda created: None))
    assert isinstance(made, CreatedEndpoint) and made.secret
    ids = {captured(world) for _ in range(3)}
    schedule = RetrySchedule(tuple(timedelta(seconds=1) for _ in range(6)))
    settings = DeliverySettings(schedule, lease=timedelta(seconds=30))
    sender, dead = local_sender(), FakeDeadLetters()
    for _ in range(8):
        world.tenancy.deliver(sender, dead, settings)
        world.clock.advance(timedelta(seconds=2))
    bodies = [json.loads(body) for _, _, body in server.received]
    assert {body["data"]["object"]["id"] for body in bodies} == ids and dead.sent == []
    for _, headers, body in server.received:
        parts = dict(part.split("=", 1) for part in headers["Payments-Signature"].split(","))
        mac = hmac.new(made.secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(mac, parts["v1"]) and headers["Payments-Event-Id"] == json.loads(body)["id"]
