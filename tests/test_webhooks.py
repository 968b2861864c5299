"""Webhook endpoints and deliveries on in-memory fakes: what registration refuses (SSRF, a 17th endpoint), what another
merchant cannot reach, and a delivery that is signed, tried again with growing waits, dead-lettered at the end, and
at least once through a crash mid-batch. Each test names the break it guards against."""

import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest

from lambdas import deadline
from lambdas.adapters import webhook_sender
from lambdas.adapters.webhook_sender import HttpWebhookSender
from lambdas.domain.webhooks import RetrySchedule, UrlPolicy, address_allowed
from lambdas.edge import ApiHandler
from lambdas.handlers.read import list_deliveries
from lambdas.handlers.webhooks import create_endpoint, delete_endpoint, list_endpoints, redeliver
from lambdas.ports import Sent
from lambdas.routes import ROUTES, Function
from lambdas.use_cases import deliveries
from lambdas.use_cases.deliveries import DeliverySettings
from tests.support.api import assert_error
from tests.support.events import body_of
from tests.support.fakes import MERCHANT_A, MERCHANT_B, fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.fakes_webhooks import FakeDeadLetters, FakeSender
from tests.support.payments import PaymentCommand, captured, card
from tools.api_events import api_event

PUBLIC = "93.184.216.34"
HOSTS = {
    "hooks.example.com": [PUBLIC],
    "internal.example.com": ["10.1.2.3"],
    "dual.example.com": [PUBLIC, "::1"],
    "unknown.invalid": [],
}
SCHEDULE = RetrySchedule(tuple(timedelta(minutes=m) for m in (1, 5, 30)))
SETTINGS = DeliverySettings(SCHEDULE, lease=timedelta(minutes=2))


def resolve(host: str) -> list[str]:
    return HOSTS.get(host, [host])  # an address literal resolves to itself


@pytest.fixture
def world():
    world = fake_world(FakeGateway())
    world.deps = replace(world.deps, webhook_urls=UrlPolicy(resolve=resolve))
    dependencies = world.tenancy.dependencies
    world.tenancy.dependencies = lambda merchant: replace(
        dependencies(merchant), webhook_urls=UrlPolicy(resolve=resolve)
    )
    return world


def call(world, method, path, body=None, key="k", principal=MERCHANT_A):
    """``method path`` through the function that serves it, as API Gateway calls it."""
    webhooks = {
        "POST /webhook_endpoints": create_endpoint,
        "GET /webhook_endpoints": list_endpoints,
        "DELETE /webhook_endpoints/{id}": delete_endpoint,
        "POST /events/{id}/redeliver": redeliver,
    }
    reads = {f"{r.method} {r.path}": list_deliveries for r in ROUTES if r.function is Function.READ}
    handlers = {Function.WEBHOOKS: webhooks, Function.READ: reads}
    function = Function.READ if method == "GET" and path.startswith("/events") else Function.WEBHOOKS
    served = ApiHandler(function, handlers[function], lambda: world.tenancy)
    headers = {"Idempotency-Key": key} if method == "POST" else {}
    return served(api_event(method, path, body, headers=headers, caller=principal), None)


def register(world, url="https://hooks.example.com/in", events=("*",), key=None, principal=MERCHANT_A):
    key = key or f"we-{url}-{events}"
    return call(world, "POST", "/webhook_endpoints", {"url": url, "events": list(events)}, key=key, principal=principal)


def new_event(world):
    """The event of a new captured payment, as the outbox wrote it."""
    payment_id = captured(world)
    events, _ = world.deps.store.list_events(100, None, None)
    return next(event for event in events if event.payment.id == payment_id)


def deliver(world, sender, dead_letters=None):
    return world.tenancy.deliver(sender, dead_letters or FakeDeadLetters(), SETTINGS)


def verified(secret: str, body: bytes, header: str) -> bool:
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


# -- registration ---------------------------------------------------------------------------------


def test_an_endpoint_shows_its_secret_once_and_never_in_a_listing(world, capsys):
    """Breaks if the secret were listed, logged, or kept in the answer a replay sends."""
    created = register(world)
    assert created["statusCode"] == 201
    body = body_of(created)
    assert body["secret"].startswith("whsec_") and body["id"].startswith("we_")
    listed = body_of(call(world, "GET", "/webhook_endpoints"))["data"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    replayed = register(world)  # the same key and body
    assert body_of(replayed)["id"] == body["id"] and "secret" not in body_of(replayed)
    assert len(body_of(call(world, "GET", "/webhook_endpoints"))["data"]) == 1
    assert body["secret"] not in capsys.readouterr().out


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/in",  # not https
        "https://127.0.0.1/in",
        "https://10.0.0.7/in",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/in",
        "https://[::ffff:127.0.0.1]/in",
        "https://[fd00:ec2::254]/in",
        "https://100.64.0.1/in",  # CGNAT
        "https://0.0.0.0/in",
        "https://224.0.0.1/in",
        "https://internal.example.com/in",  # resolves to a private address
        "https://dual.example.com/in",  # one of its addresses is loopback
        "https://unknown.invalid/in",  # resolves to nothing
        "https://user:pw@hooks.example.com/in",
        "http://127.0.0.1:8080/in",  # loopback http: only where `make local` allows it
    ],
)
def test_registration_refuses_what_is_not_a_public_https_address(world, url):
    """Breaks if an endpoint could make delivery reach the metadata service, the VPC or the host itself."""
    assert_error(register(world, url), 400, "invalid_request_error", "url")
    assert body_of(call(world, "GET", "/webhook_endpoints"))["data"] == []


def test_loopback_http_is_allowed_only_when_the_policy_says_so():
    """Breaks if `make local`'s loopback permission leaked to another address or to https on loopback."""
    local = UrlPolicy(allow_loopback_http=True, resolve=resolve)
    assert local.check("http://127.0.0.1:8080/in").addresses == ("127.0.0.1",)
    for refused in ("http://10.0.0.1:8080/", "http://localhost:8080/", "https://127.0.0.1/", "http://127.0.0.1/"):
        with pytest.raises(Exception, match="url"):
            local.check(refused)
    assert not address_allowed("::ffff:10.0.0.1") and address_allowed(PUBLIC)


def test_a_seventeenth_endpoint_is_refused_until_one_is_deleted(world):
    """Breaks if the per-merchant cap were not enforced, or a deleted endpoint still counted."""
    ids = [body_of(register(world, f"https://hooks.example.com/{n}"))["id"] for n in range(16)]
    assert_error(register(world, "https://hooks.example.com/17"), 400, "invalid_request_error")
    assert call(world, "DELETE", f"/webhook_endpoints/{ids[0]}")["statusCode"] == 200
    assert register(world, "https://hooks.example.com/17")["statusCode"] == 201


def test_another_merchants_endpoint_is_an_unknown_id(world):
    """Breaks if a merchant could list or delete another merchant's endpoint."""
    theirs = body_of(register(world, principal=MERCHANT_B))["id"]
    assert body_of(call(world, "GET", "/webhook_endpoints"))["data"] == []
    assert_error(call(world, "DELETE", f"/webhook_endpoints/{theirs}"), 404, "invalid_request_error")
    assert len(body_of(call(world, "GET", "/webhook_endpoints", principal=MERCHANT_B))["data"]) == 1


# -- delivery ---------------------------------------------------------------------------------------


def test_a_delivery_is_signed_and_leaves_the_index_once_taken(world):
    """Breaks if a delivery were unsigned, signed over other bytes, or sent again after a 2xx."""
    secret = body_of(register(world))["secret"]
    event = new_event(world)
    sender = FakeSender(Sent(200))
    counts = deliver(world, sender)
    assert counts["delivered"] == 1 and counts["failed"] == 0
    url, body, headers = sender.requests[0]
    assert url == "https://hooks.example.com/in" and headers["Payments-Event-Id"] == event.id
    assert headers["Content-Type"] == "application/json" and json.loads(body)["id"] == event.id
    assert verified(secret, body, headers["Payments-Signature"])
    world.clock.advance(timedelta(days=1))
    assert deliver(world, sender)["delivered"] == 0 and len(sender.requests) == 1


def test_only_subscribed_endpoints_not_deleted_get_an_event(world):
    """Breaks if an event went to an endpoint that did not ask for its type, or to a deleted one."""
    register(world, "https://hooks.example.com/refunds", ["refund.succeeded"])
    gone = body_of(register(world, "https://hooks.example.com/gone"))["id"]
    register(world, "https://hooks.example.com/payments", ["payment.succeeded"])
    call(world, "DELETE", f"/webhook_endpoints/{gone}")
    new_event(world)
    sender = FakeSender(Sent(200))
    deliver(world, sender)
    assert [url for url, _, _ in sender.requests] == ["https://hooks.example.com/payments"]


def test_failures_are_tried_again_after_growing_waits_then_dead_lettered(world):
    """Breaks if a failing endpoint were retried at once, given up on early, or never dead-lettered."""
    register(world)
    event = new_event(world)
    sender, dead = FakeSender(Sent(500)), FakeDeadLetters()
    assert deliver(world, sender, dead)["failed"] == 1
    assert deliver(world, sender, dead)["failed"] == 0  # not due yet
    for wait in SCHEDULE.waits:
        world.clock.advance(wait * 1.25)  # past the jittered wait
        deliver(world, sender, dead)
    assert len(sender.requests) == len(SCHEDULE.waits) + 1
    assert [event_id for _, event_id in dead.sent] == [event.id]
    world.clock.advance(timedelta(days=7))
    assert deliver(world, sender, dead)["failed"] == 0  # out of the index
    attempts = world.deps.store.attempts(event.id)
    assert [a.status for a in attempts] == [500] * (len(SCHEDULE.waits) + 1)


def test_an_endpoint_that_took_the_event_is_not_sent_it_again_while_another_is_retried(world):
    """Breaks if a retry round resent the event to the endpoints that had it already."""
    register(world, "https://hooks.example.com/ok")
    register(world, "https://hooks.example.com/down")
    new_event(world)
    sender = FakeSender(by_url={"https://hooks.example.com/ok": Sent(200), "https://hooks.example.com/down": Sent(503)})
    deliver(world, sender)
    world.clock.advance(timedelta(minutes=2))
    deliver(world, sender)
    assert sorted(url for url, _, _ in sender.requests) == sorted(
        ["https://hooks.example.com/ok", "https://hooks.example.com/down", "https://hooks.example.com/down"]
    )


class Crashed(BaseException):
    """The delivery function dying mid-batch (not an error a run catches)."""


def test_a_crash_mid_batch_loses_no_event(world):
    """Breaks if a crash after the first POST left events leased for ever, or unsent, or sent unsigned."""
    secret = body_of(register(world))["secret"]
    events = [new_event(world) for _ in range(5)]
    crashing = FakeSender(Sent(200))

    def send(url, body, headers):
        if crashing.requests:
            raise Crashed
        return FakeSender.send(crashing, url, body, headers)

    crashing.send = send
    with pytest.raises(Crashed):
        deliver(world, crashing)
    sender = FakeSender(Sent(200))
    deliver(world, sender)  # the leases still hold
    world.clock.advance(SETTINGS.lease + timedelta(seconds=1))
    deliver(world, sender)
    received = {json.loads(body)["id"] for _, body, _ in crashing.requests[:1] + sender.requests}
    assert received == {event.id for event in events}
    assert all(verified(secret, body, headers["Payments-Signature"]) for _, body, headers in sender.requests)


def test_redelivery_sends_again_and_a_replay_does_not(world):
    """Breaks if redelivery did nothing, or a replayed key made the event due once more."""
    register(world)
    event = new_event(world)
    sender = FakeSender(Sent(200))
    deliver(world, sender)
    first = call(world, "POST", f"/events/{event.id}/redeliver", {}, key="again")
    assert first["statusCode"] == 202
    deliver(world, sender)
    assert len(sender.requests) == 2
    replayed = call(world, "POST", f"/events/{event.id}/redeliver", {}, key="again")
    assert replayed["statusCode"] == 202 and replayed["headers"].get("Idempotent-Replayed") == "true"
    deliver(world, sender)
    assert len(sender.requests) == 2


def test_another_merchants_event_cannot_be_redelivered_or_inspected(world):
    """Breaks if a merchant could make another merchant's event due, or read its deliveries."""
    event = new_event(world)
    redelivered = call(world, "POST", f"/events/{event.id}/redeliver", {}, principal=MERCHANT_B)
    assert_error(redelivered, 404, "invalid_request_error")
    assert_error(
        call(world, "GET", f"/events/{event.id}/deliveries", principal=MERCHANT_B), 404, "invalid_request_error"
    )
    assert call(world, "GET", f"/events/{event.id}/deliveries")["statusCode"] == 200


def test_deliveries_list_each_attempt_without_a_body(world):
    """Breaks if a redirect were followed or counted as delivered, or an attempt kept more than its outcome."""
    register(world)
    event = new_event(world)
    deliver(world, FakeSender(Sent(302)))
    (attempt,) = body_of(call(world, "GET", f"/events/{event.id}/deliveries"))["data"]
    assert attempt["status"] == 302 and attempt["error"] is None
    assert set(attempt) == {"endpoint_id", "attempted_at", "status", "error"}


def test_the_default_waits_last_over_three_days():
    assert RetrySchedule().total >= timedelta(days=3)
    assert RetrySchedule.from_setting("1,2").waits == (timedelta(seconds=1), timedelta(seconds=2))


# -- hostile receivers and names --------------------------------------------------------------------------------


def _trickling_server(seconds: float, step: float = 0.25) -> tuple[int, threading.Event]:
    """A receiver that answers 200 at once, then sends one header line every ``step`` seconds for ``seconds``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    done = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                time.sleep(step)
                connection.sendall(b"X-Slow: a\r\n")
            connection.sendall(b"Content-Length: 0\r\n\r\n")
        except OSError:
            pass
        finally:
            connection.close()
            server.close()
            done.set()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], done


# -- a slow receiver ------------------------------------------------------------------------------


def test_a_trickling_receiver_is_cut_at_the_timeout_and_not_counted_delivered():
    """A 2xx answer within the timeout delivers an event: a receiver that answers its head one line at a time
    past it is cut off there, and its event is not delivered."""
    port, done = _trickling_server(seconds=4.0)
    sender = HttpWebhookSender(UrlPolicy(allow_loopback_http=True), timeout=1.0)
    started = time.monotonic()
    sent = sender.send(f"http://127.0.0.1:{port}/in", b"{}", {"Content-Type": "application/json"})
    elapsed = time.monotonic() - started
    done.wait(6)
    assert elapsed < 2.0, f"a 1 s timeout held the POST {elapsed:.1f} s"
    assert sent.status is None and sent.error == "timeout"


def test_one_merchants_trickling_endpoint_does_not_hold_the_run_past_its_deadline(world, monkeypatch):
    """Merchant A's endpoint trickles; merchant B's event is in the same wave. The run ends within its time, so every
    round it started is recorded. Scaled down: POST_SECONDS 1.5, sender timeout 1 s, a 4 s function."""
    port, done = _trickling_server(seconds=6.0)
    loopback = UrlPolicy(allow_loopback_http=True, resolve=resolve)
    dependencies = world.tenancy.dependencies
    world.tenancy.dependencies = lambda merchant: replace(dependencies(merchant), webhook_urls=loopback)
    assert register(world, f"http://127.0.0.1:{port}/in")["statusCode"] == 201  # merchant A (make-local policy)
    assert register(world, "https://hooks.example.com/b", principal=MERCHANT_B)["statusCode"] == 201
    new_event(world)
    other = world.other().create_payment(PaymentCommand(1000, "usd", card=card()), "req", "pay-b")
    assert other.status == 201

    real, fake = HttpWebhookSender(loopback, timeout=1.0), FakeSender(Sent(200))

    class Both:
        def send(self, url, body, headers):
            return (real if url.startswith("http://127.0.0.1") else fake).send(url, body, headers)

    monkeypatch.setattr(deliveries, "POST_SECONDS", 1.5)
    token = deadline._deadline.set(time.monotonic() + 4.0 - deadline.WRITE_RESERVE_SECONDS)
    try:
        started = time.monotonic()
        counts = world.tenancy.deliver(Both(), FakeDeadLetters(), SETTINGS)
        elapsed = time.monotonic() - started
    finally:
        deadline._deadline.reset(token)
        done.wait(8)
    assert elapsed < 4.0, f"the run took {elapsed:.1f} s of a 4 s function"
    assert counts["delivered"] == 1 and counts["failed"] == 1


# -- idempotency of POST /webhook_endpoints -------------------------------------------------------------


def test_a_replay_of_an_endpoints_creation_is_the_first_answer_whatever_dns_says_now(world):
    """Same key, same body: the first answer is replayed, whatever the URL's host resolves to now."""
    HOSTS["moving.example.com"] = ["93.184.216.34"]
    try:
        first = register(world, "https://moving.example.com/in", key="create-1")
        assert first["statusCode"] == 201
        HOSTS["moving.example.com"] = []  # the host no longer resolves (or now resolves privately)
        replayed = register(world, "https://moving.example.com/in", key="create-1")
    finally:
        HOSTS.pop("moving.example.com", None)
    assert replayed["statusCode"] == 201, body_of(replayed)
    assert replayed["headers"].get("Idempotent-Replayed") == "true"
    assert body_of(replayed)["id"] == body_of(first)["id"]


# -- SSRF: IPv6 forms of non-public addresses ------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "fec0::1",  # site-local (deprecated, RFC 3879): routed inside a site
    ],
)
def test_registration_refuses_ipv6_forms_of_non_public_addresses(address):
    """6to4 addresses wrapping a non-public IPv4 address, and site-local ones, are refused on every interpreter
    (the standard library's tables differ between patch levels)."""
    policy = UrlPolicy(resolve=lambda host: [address])
    with pytest.raises(Exception, match="public"):
        policy.check("https://hooks.example.com/in")


# -- the request as sent --------------------------------------------------------------------------------------


def test_an_ipv6_literal_endpoint_is_sent_a_bracketed_host_header():
    target = UrlPolicy(resolve=lambda host: [host]).check("https://[2606:4700:4700::1111]/in")
    assert b"\r\nHost: [2606:4700:4700::1111]\r\n" in webhook_sender._request(target, b"{}", {})


def test_an_internationalised_endpoint_is_reached_and_checked_by_its_ascii_name():
    """Certificates and DNS name the A-label: TLS checks it and the Host header carries it."""
    target = UrlPolicy(resolve=lambda host: ["93.184.216.34"]).check("https://пример.рф/in")
    assert target.host == "xn--e1afmkfd.xn--p1ai"
    assert b"\r\nHost: xn--e1afmkfd.xn--p1ai\r\n" in webhook_sender._request(target, b"{}", {})


# -- one merchant's endpoints cannot starve the run --------------------------------------------------------------


def test_a_wave_of_blackholed_endpoints_fits_in_the_time_the_run_checked_for(world, monkeypatch):
    """A wave starts while one POST's time is left and takes at most one POST's time, however many endpoints its
    events have and however long each takes to time out. Scaled: a POST takes 0.5 s, POST_SECONDS 0.6, 1.2 s left."""
    for n in range(16):
        assert register(world, f"https://hooks.example.com/a{n}")["statusCode"] == 201
    assert register(world, "https://hooks.example.com/b", principal=MERCHANT_B)["statusCode"] == 201
    for _ in range(5):
        new_event(world)
    for n in range(3):
        assert world.other().create_payment(PaymentCommand(1000, "usd", card=card()), "req", f"b{n}").status == 201

    class Blackholes(FakeSender):
        def send(self, url, body, headers):
            if "/a" in url:
                time.sleep(0.5)  # the POST's whole timeout
                return Sent(error="timeout")
            return super().send(url, body, headers)

    monkeypatch.setattr(deliveries, "POST_SECONDS", 0.6)
    monkeypatch.setattr(deliveries.random, "shuffle", lambda queues: None)
    token = deadline._deadline.set(time.monotonic() + 1.2)
    try:
        started = time.monotonic()
        world.tenancy.deliver(Blackholes(Sent(200)), FakeDeadLetters(), SETTINGS)
        elapsed = time.monotonic() - started
    finally:
        deadline._deadline.reset(token)
    assert elapsed < 1.2 + deadline.WRITE_RESERVE_SECONDS * 0.5 / 10, f"the wave took {elapsed:.2f} s, 1.2 s were left"


def test_a_run_with_time_left_delivers_more_than_fifty_events_of_a_merchant(world):
    """A run with time left keeps delivering past one listing's batch, until nothing is due."""
    register(world)
    for _ in range(60):
        new_event(world)
    world.clock.advance(timedelta(minutes=10))
    counts = world.tenancy.deliver(FakeSender(Sent(200)), FakeDeadLetters(), SETTINGS)
    left = world.deps.store.due_events(world.clock(), 1000)
    # either the run drains what is due, or the backlog metric (the 'webhook-backlog' alarm's) shows what it left
    assert counts["delivered"] == 60 or counts["oldest_undelivered_seconds"] >= 600, (counts, len(left))
