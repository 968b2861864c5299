"""The SDK's webhook promises: ``verify_webhook`` returns the event only for the raw body the service signed, under
the endpoint's secret, within the tolerance (each signature here is made with ``hmac`` and ``hashlib``, not by the
SDK), and the event and endpoint methods send the contract's requests."""

import json
import time

import pytest
import requests

import client.__main__ as cli
from client import (
    Event,
    InvalidId,
    Payment,
    PaymentsClient,
    Refund,
    WebhookEndpoint,
    WebhookPayloadError,
    WebhookSignatureError,
    verify_webhook,
)
from lambdas.domain.webhooks import signature_header as service_signature
from tests.support.fakes import fake_world
from tests.support.payments import pay
from tests.support.sdk import BODY, ENDPOINT, EVENT, NOW, PAYMENT, SECRET, Answer, Script, client, recorded, signed

REFUND = {"id": "re_1", "payment_id": "pay_1", "amount": 500, "status": "succeeded",
          "created_at": "2026-11-27T12:05:00.000Z"}  # fmt: skip


def test_a_delivery_signed_as_the_contract_says_returns_its_typed_event():
    event = verify_webhook(BODY, signed(BODY), SECRET, now=NOW)
    assert (event.id, event.type, event.created_at) == ("evt_1", "payment.succeeded", "2026-11-27T12:00:00.000Z")
    assert isinstance(event.object, Payment) and event.object.id == "pay_1" and event.object.card.last4 == "4242"
    assert event.object_id == "pay_1" and event.data == {"object": PAYMENT}


def test_a_body_given_as_text_is_verified_as_its_utf8_bytes():
    body = json.dumps({**EVENT, "data": {"object": {**PAYMENT, "description": "Café ☕"}}}, ensure_ascii=False)
    assert verify_webhook(body, signed(body.encode()), SECRET, now=NOW).object.description == "Café ☕"


def test_a_refund_events_object_is_a_refund_and_an_unknown_kind_stays_its_json():
    refund = json.dumps({**EVENT, "type": "refund.succeeded", "data": {"object": REFUND}}).encode()
    assert verify_webhook(refund, signed(refund), SECRET, now=NOW).object == Refund.of(REFUND)
    payout = {"id": "po_1", "currency": "USD", "amount": 9500}
    other = json.dumps({**EVENT, "type": "payout.paid", "data": {"object": payout}}).encode()
    event = verify_webhook(other, signed(other), SECRET, now=NOW)
    assert event.object == payout and event.object_id == "po_1"


@pytest.mark.parametrize(
    ("body", "header", "secret"),
    [
        (BODY.replace(b'"amount":1999', b'"amount":1'), signed(BODY), SECRET),  # the body changed on the way
        (BODY + b" ", signed(BODY), SECRET),  # one byte more
        (BODY, signed(BODY, secret="whsec_another"), SECRET),  # signed under another endpoint's secret
        (BODY, signed(BODY), "whsec_another"),
        (BODY, signed(BODY, at=NOW - 1).replace(f"t={NOW - 1}", f"t={NOW}"), SECRET),  # a fresh t on an old signature
    ],
    ids=["changed-body", "extra-byte", "signed-with-another-secret", "verified-with-another-secret", "t-swapped"],
)
def test_a_delivery_that_does_not_match_is_refused(body, header, secret):
    with pytest.raises(WebhookSignatureError) as refused:
        verify_webhook(body, header, secret, now=NOW)
    assert refused.value.reason == "no_matching_signature"


def test_a_body_parsed_and_serialised_again_is_refused_so_only_the_raw_bytes_verify():
    """What a web framework that hands over parsed JSON would produce: the same event, other bytes."""
    for reserialised in (json.dumps(json.loads(BODY)), json.dumps(json.loads(BODY), indent=2),
                         json.dumps(json.loads(BODY), sort_keys=True, separators=(",", ":"))):  # fmt: skip
        assert json.loads(reserialised) == EVENT and reserialised.encode() != BODY
        with pytest.raises(WebhookSignatureError):
            verify_webhook(reserialised, signed(BODY), SECRET, now=NOW)


@pytest.mark.parametrize(
    ("signed_at", "verified"),
    [(NOW - 301, False), (NOW - 300, True), (NOW + 300, True), (NOW + 301, False), (NOW - 86_400, False)],
)
def test_a_signature_older_or_newer_than_the_tolerance_is_refused(signed_at, verified):
    header = signed(BODY, at=signed_at)
    if verified:
        assert verify_webhook(BODY, header, SECRET, now=NOW).id == "evt_1"
    else:
        with pytest.raises(WebhookSignatureError) as refused:
            verify_webhook(BODY, header, SECRET, now=NOW)
        assert refused.value.reason == "outside_tolerance"


def test_the_tolerance_is_the_callers_and_the_clock_is_the_machines_by_default():
    header = signed(BODY, at=NOW - 3600)
    assert verify_webhook(BODY, header, SECRET, tolerance=3600, now=NOW).id == "evt_1"
    assert verify_webhook(BODY, signed(BODY, at=int(time.time())), SECRET).id == "evt_1"
    with pytest.raises(WebhookSignatureError):
        verify_webhook(BODY, signed(BODY, at=int(time.time()) - 3600), SECRET)


def test_any_of_several_v1_signatures_may_match_and_other_schemes_are_left_aside():
    digest = signed(BODY).split("v1=")[1]
    header = f"t={NOW}, v0=abc, v1={'0' * 64},v1={digest.upper()}"
    assert verify_webhook(BODY, header, SECRET, now=NOW).id == "evt_1"


@pytest.mark.parametrize(
    "header",
    ["", "garbage", f"v1={'a' * 64}", f"t={NOW}", f"t={NOW},v1=", f"t={NOW},v1=xyz", f"t={NOW},v1={'a' * 63}",
     f"t=abc,v1={'a' * 64}", f"t=-1,v1={'a' * 64}", f"t={NOW},t={NOW},v1={'a' * 64}", f"t={NOW};v1={'a' * 64}",
     f"t=١٢,v1={'a' * 64}", f"t={NOW},v1={'é' * 64}"],
)  # fmt: skip
def test_a_malformed_header_is_refused_as_such(header):
    with pytest.raises(WebhookSignatureError) as refused:
        verify_webhook(BODY, header, SECRET, now=NOW)
    assert refused.value.reason == "malformed_header" and isinstance(refused.value, ValueError)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"id": "evt_1"}', b"\xff\xfe", b'{"id":1,"type":2}'])
def test_a_signed_body_that_is_not_an_event_is_a_payload_error(body):
    with pytest.raises(WebhookPayloadError):
        verify_webhook(body, signed(body), SECRET, now=NOW)


# --- the routes ------------------------------------------------------------------------------


def test_events_pages_with_the_type_filter_until_the_last_page():
    second = {**EVENT, "id": "evt_0"}
    script = Script(
        Answer(200, {"data": [EVENT], "has_more": True}), Answer(200, {"data": [second], "has_more": False})
    )
    events = list(client(script)[0].events(type="payment.succeeded", page_size=1))
    assert [e.id for e in events] == ["evt_1", "evt_0"] and all(isinstance(e, Event) for e in events)
    assert [r["url"] for r in script.requests] == [
        "http://api/events?limit=1&type=payment.succeeded",
        "http://api/events?limit=1&type=payment.succeeded&starting_after=evt_1",
    ]
    unfiltered = Script(Answer(200, {"data": [], "has_more": False}))
    assert list(client(unfiltered)[0].events()) == [] and unfiltered.requests[0]["url"] == "http://api/events?limit=100"


def test_an_event_and_its_deliveries_are_read_by_id():
    attempt = {"endpoint_id": "we_1", "attempted_at": "2026-11-27T12:00:01Z", "status": None, "error": "timeout"}
    script = Script(Answer(200, EVENT), Answer(200, {"data": [attempt, {**attempt, "status": 200, "error": None}]}))
    sdk, _ = client(script)
    assert sdk.event("evt_1").object_id == "pay_1"
    first, second = sdk.event_deliveries("evt_1")
    assert (first.status, first.error, second.status, second.endpoint_id) == (None, "timeout", 200, "we_1")
    assert [(r["method"], r["url"]) for r in script.requests] == [
        ("GET", "http://api/events/evt_1"), ("GET", "http://api/events/evt_1/deliveries")]  # fmt: skip


def test_a_redelivery_is_a_post_with_a_key_retried_with_the_same_key():
    script = Script(Answer(503, {"error": {"type": "api_error"}}), Answer(202, {"id": "evt_1"}))
    client(script)[0].redeliver("evt_1")
    assert [(r["method"], r["url"], r["json"]) for r in script.requests] == [
        ("POST", "http://api/events/evt_1/redeliver", {})] * 2  # fmt: skip
    assert len({r["headers"]["Idempotency-Key"] for r in script.requests}) == 1


def test_an_endpoint_is_created_with_its_secret_listed_and_deleted():
    script = Script(Answer(201, {**ENDPOINT, "secret": SECRET}), Answer(200, {"data": [ENDPOINT]}),
                    Answer(200, {**ENDPOINT, "deleted": True}))  # fmt: skip
    sdk, _ = client(script)
    created = sdk.create_webhook_endpoint("https://shop.example/hooks", ["*"], key="hook-1")
    assert created.secret == SECRET and SECRET not in repr(created) and created.events == ("*",)
    assert sdk.webhook_endpoints() == [WebhookEndpoint.of(ENDPOINT)]
    sdk.delete_webhook_endpoint("we_1")
    post, listing, delete = script.requests
    assert (post["method"], post["url"], post["json"]) == (
        "POST", "http://api/webhook_endpoints", {"url": "https://shop.example/hooks", "events": ["*"]})  # fmt: skip
    assert post["headers"]["Idempotency-Key"] == "hook-1"
    assert (listing["method"], listing["url"]) == ("GET", "http://api/webhook_endpoints")
    assert (delete["method"], delete["url"], delete["json"]) == ("DELETE", "http://api/webhook_endpoints/we_1", None)


def test_a_single_event_type_given_as_text_is_refused_before_anything_is_sent():
    sdk, recorder = recorded()
    with pytest.raises(TypeError):
        sdk.create_webhook_endpoint("https://shop.example/hooks", "payment.succeeded")
    assert recorder.sent == []


@pytest.mark.parametrize(
    ("method", "identifier"),
    [("event", "pay_1"), ("event_deliveries", "evt_1/../../payments"), ("redeliver", "we_1"),
     ("delete_webhook_endpoint", "evt_1"), ("delete_webhook_endpoint", "we_1/../evt_1")],
)  # fmt: skip
def test_an_id_of_another_kind_is_refused_before_anything_is_sent(method, identifier):
    sdk, recorder = recorded()
    with pytest.raises(InvalidId):
        getattr(sdk, method)(identifier)
    assert recorder.sent == []


# --- the SDK and the service agree ----------------------------------------------------------


def test_the_sdk_types_the_events_the_service_writes_and_verifies_the_signature_it_makes(gateway):
    """The bodies are the service's own (GET /events on the fakes), serialised and signed as its delivery does."""
    world = fake_world(gateway)
    payment_id = pay(world, metadata={"order": "A-1"}).body["id"]
    shown = Payment.of(world.service.get_payment(payment_id).body)  # as GET shows it right after the change
    world.service.refund(payment_id, 300, "r1")
    paid, refunded = sorted(world.service.list_events("10", None, None).body["data"], key=lambda e: e["type"])
    for body, kind in ((paid, Payment), (refunded, Refund)):
        raw = json.dumps(body, separators=(",", ":")).encode()
        event = verify_webhook(raw, service_signature(SECRET, raw, NOW), SECRET, now=NOW)
        assert event == Event.of(body) and isinstance(event.object, kind)
    assert Event.of(paid).object == shown and shown.metadata == {"order": "A-1"}
    assert Event.of(refunded).object_id.startswith("re_") and Event.of(refunded).object.payment_id == payment_id


def test_the_cli_lists_the_newest_events_of_a_type(monkeypatch, capsys):
    older = {**EVENT, "id": "evt_0"}
    script = Script(Answer(200, {"data": [EVENT, older], "has_more": True}))
    monkeypatch.setattr(cli.SigV4, "from_chain", lambda *args: None)
    monkeypatch.setattr(cli, "PaymentsClient", lambda url, _: PaymentsClient(url, auth=lambda r: r, session=script))
    assert cli.main(["--api-url", "http://api", "events", "--type", "payment.succeeded", "--limit", "2"]) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == ["evt_1", "evt_0"]
    assert [r["url"] for r in script.requests] == ["http://api/events?limit=2&type=payment.succeeded"]


def test_an_endpoint_whose_first_answer_was_lost_is_replaced_so_its_secret_is_known():
    """The retry is replayed without the secret (the service keeps none for replays): that endpoint is deleted, and
    the URL registered anew under a new key."""
    replayed = Answer(201, ENDPOINT, {"Idempotent-Replayed": "true"})
    script = Script(requests.ConnectionError("reset"), replayed, Answer(200, {**ENDPOINT, "deleted": True}),
                    Answer(201, {**ENDPOINT, "id": "we_2", "secret": SECRET}))  # fmt: skip
    created = client(script)[0].create_webhook_endpoint("https://shop.example/hooks", ["*"], key="hook-1")
    assert (created.id, created.secret) == ("we_2", SECRET)
    lost, replay, delete, anew = script.requests
    assert (delete["method"], delete["url"]) == ("DELETE", "http://api/webhook_endpoints/we_1")
    assert lost["headers"]["Idempotency-Key"] == replay["headers"]["Idempotency-Key"] == "hook-1"
    assert anew["headers"]["Idempotency-Key"] != "hook-1" and anew["json"] == lost["json"]
