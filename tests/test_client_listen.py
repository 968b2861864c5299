"""``python -m client listen`` over a real local socket, with the API on a scripted transport: it registers an
endpoint for its own port, prints one line per verified delivery and refuses the others, forwards the body and
signature as received, answers the service with the forward's outcome, and deletes its endpoint when stopped; and
it verifies what the service's own delivery code sends it."""

import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import requests

import client.__main__ as cli
from client import PaymentsClient
from client.listen import Listener
from lambdas.adapters.webhook_sender import HttpWebhookSender
from lambdas.domain.webhooks import UrlPolicy
from lambdas.service import PaymentService
from lambdas.use_cases.deliveries import DeliverySettings
from tests.support.fakes import FakeClock, fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.fakes_webhooks import FakeDeadLetters
from tests.support.payments import captured
from tests.support.sdk import BODY, ENDPOINT, EVENT, NOW, SECRET, Answer, Script, signed

pytestmark = pytest.mark.integration  # a socket on 127.0.0.1

CREATED = {**ENDPOINT, "url": "http://127.0.0.1:0/", "secret": SECRET}


def api(*answers) -> tuple[PaymentsClient, Script]:
    script = Script(Answer(201, CREATED), *answers, Answer(200, {**ENDPOINT, "deleted": True}))
    return PaymentsClient("http://api", auth=lambda r: r, session=script), script


class Forwarded(requests.adapters.BaseAdapter):
    """The app behind ``--forward-to``: records each request and answers ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status, self.sent = status, []

    def send(self, request, **kwargs) -> requests.Response:
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response.request, response._content = self.status, request, b""
        return response

    def close(self) -> None:
        pass


@contextmanager
def listening(sdk: PaymentsClient, **options) -> Iterator[tuple[Listener, io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with Listener(sdk, port=0, out=out, err=err, **options) as listener:
        server = threading.Thread(target=listener.serve, daemon=True)
        server.start()
        try:
            yield listener, out, err
        finally:
            listener.stop()
            server.join(5)


def deliver(listener: Listener, body: bytes, header: str) -> int:
    headers = {"Content-Type": "application/json", "Payments-Event-Id": "evt_1", "Payments-Signature": header}
    return requests.post(listener.url, data=body, headers=headers, timeout=5).status_code


def now_signed(body: bytes, secret: str = SECRET) -> str:
    return signed(body, secret, at=int(time.time()))


def test_it_registers_its_port_prints_each_verified_event_and_deletes_its_endpoint():
    sdk, script = api()
    with listening(sdk, events=("payment.succeeded",)) as (listener, out, err):
        port = listener.server.server_address[1]
        assert listener.url == f"http://127.0.0.1:{port}/"
        assert deliver(listener, BODY, now_signed(BODY)) == 200
        assert deliver(listener, BODY, now_signed(BODY)) == 200  # at least once: a second delivery of one event
    create, delete = script.requests
    assert (create["method"], create["json"]) == ("POST", {"url": listener.url, "events": ["payment.succeeded"]})
    assert (delete["method"], delete["url"]) == ("DELETE", "http://api/webhook_endpoints/we_1")
    assert out.getvalue().splitlines() == ["payment.succeeded evt_1 pay_1", "payment.succeeded evt_1 pay_1 (again)"]
    assert "we_1" in err.getvalue() and SECRET in err.getvalue()  # the secret, for an app behind --forward-to


@pytest.mark.parametrize(
    "header",
    [signed(BODY, at=NOW), "", "t=1,v1=abc", None],  # signed long ago; empty; malformed; no header
    ids=["old", "empty", "malformed", "missing"],
)
def test_a_delivery_that_does_not_verify_is_refused_and_not_printed(header):
    with listening(api()[0]) as (listener, out, err):
        headers = {"Payments-Signature": header} if header is not None else {}
        assert requests.post(listener.url, data=BODY, headers=headers, timeout=5).status_code == 400
        assert deliver(listener, BODY.replace(b"1999", b"1"), now_signed(BODY)) == 400  # a changed body
        assert deliver(listener, BODY, now_signed(BODY, "whsec_another")) == 400
    assert out.getvalue() == "" and err.getvalue().count("refused a delivery") == 3


@pytest.mark.parametrize(("app_status", "answered"), [(204, 200), (500, 502)])
def test_forward_to_passes_the_raw_body_and_signature_on_and_answers_with_its_outcome(app_status, answered):
    app, forwarder = Forwarded(app_status), requests.Session()
    forwarder.mount("http://", app)
    target = "http://127.0.0.1:8000/hooks"
    with listening(api()[0], forward_to=target, forwarder=forwarder) as (listener, out, _):
        header = now_signed(BODY)
        assert deliver(listener, BODY, header) == answered  # a failing app: the service tries again
    (sent,) = app.sent
    assert (sent.url, sent.body, sent.headers["Payments-Signature"]) == (target, BODY, header)
    assert sent.headers["Payments-Event-Id"] == "evt_1" and json.loads(sent.body) == EVENT
    assert out.getvalue() == f"payment.succeeded evt_1 pay_1 -> {target} {app_status}\n"


def test_an_app_that_cannot_be_reached_gets_the_delivery_tried_again():
    forwarder = requests.Session()
    forwarder.mount("http://", requests.adapters.HTTPAdapter(max_retries=0))
    with listening(api()[0], forward_to="http://127.0.0.1:9/", forwarder=forwarder) as (listener, out, _):
        assert deliver(listener, BODY, now_signed(BODY)) == 502
    assert out.getvalue().endswith("ConnectionError\n")


def ctrl_c(listener: Listener) -> None:
    raise KeyboardInterrupt


def terminated(listener: Listener) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler interrupts this


@pytest.mark.parametrize("stop", [ctrl_c, terminated], ids=["ctrl-c", "sigterm"])
def test_the_cli_listens_until_ctrl_c_or_sigterm_then_deletes_its_endpoint(stop, monkeypatch, capsys):
    sdk, script = api()
    monkeypatch.setattr(cli.SigV4, "from_chain", lambda *args: None)
    monkeypatch.setattr(cli, "PaymentsClient", lambda url, _: sdk)
    monkeypatch.setattr(Listener, "serve", stop)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["listen", "--port", "0", "--events", "payment.succeeded, refund.succeeded"]) == 0
    create, delete = script.requests
    assert create["json"]["events"] == ["payment.succeeded", "refund.succeeded"]
    assert create["json"]["url"].startswith("http://127.0.0.1:") and delete["method"] == "DELETE"
    assert "Deleted we_1" in capsys.readouterr().err and signal.getsignal(signal.SIGTERM) == before


def test_a_url_the_api_refuses_ends_the_cli_with_its_error(monkeypatch, capsys):
    refused = {"error": {"type": "invalid_request_error", "code": "url_not_allowed", "param": "url", "message": "m"}}
    script = Script(Answer(400, refused))
    monkeypatch.setattr(cli.SigV4, "from_chain", lambda *args: None)
    monkeypatch.setattr(cli, "PaymentsClient", lambda url, _: PaymentsClient(url, auth=lambda r: r, session=script))
    assert cli.main(["listen", "--port", "0"]) == 1
    assert json.loads(capsys.readouterr().err)["code"] == "url_not_allowed" and len(script.requests) == 1


class ServiceTransport:
    """The API as a session whose webhook endpoint routes the service answers, on the fakes."""

    def __init__(self, service: PaymentService) -> None:
        self.service = service

    def request(self, method, url, json=None, headers=None, auth=None, timeout=None, allow_redirects=True):
        if method == "POST":
            answer = self.service.create_endpoint(json["url"], json["events"], headers["Idempotency-Key"])
        else:
            answer = self.service.delete_endpoint(url.rsplit("/", 1)[1])
        return Answer(answer.status, answer.body)


def test_it_verifies_and_prints_what_the_service_delivers_and_its_endpoint_is_gone_after():
    """The service's own delivery (its signature, its body's bytes, over HTTP) to the listener the SDK registered;
    the service's clock is now, since the listener checks ``t`` against the machine's."""
    world = fake_world(FakeGateway(), clock=FakeClock(datetime.now(UTC)))
    service = PaymentService(replace(world.deps, webhook_urls=UrlPolicy(allow_loopback_http=True)))
    sdk = PaymentsClient("http://api", auth=lambda r: r, session=ServiceTransport(service))
    with listening(sdk, events=("payment.succeeded", "refund.succeeded")) as (_, out, err):
        payment_id = captured(world)
        refund_id = world.service.refund(payment_id, 300, "r1").body["id"]
        sender = HttpWebhookSender(UrlPolicy(allow_loopback_http=True), timeout=5.0)
        world.tenancy.deliver(sender, FakeDeadLetters(), DeliverySettings())
    lines = sorted(line.split(" ", 2)[::2] for line in out.getvalue().splitlines())
    assert lines == [["payment.succeeded", payment_id], ["refund.succeeded", refund_id]], err.getvalue()
    assert world.service.list_endpoints().body["data"] == []
