"""The SDK's settlement reads: the contract's requests (no idempotency key, paging by the last id), typed results
with each mismatch as each side tells it, the read errors typed as the other reads', and settlement events typed
when a delivery is verified."""

import json

import pytest
import requests

import client.__main__ as cli
from client import (
    Event,
    InvalidId,
    InvalidRequest,
    NotFound,
    PaymentsClient,
    Settlement,
    SettlementMismatch,
    verify_webhook,
)
from lambdas.domain.ids import new_id
from lambdas.domain.webhooks import signature_header as service_signature
from lambdas.use_cases.settlements import import_settlements
from tests.support.fakes import fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.fakes_settlements import FakeSettlementImports
from tests.support.payments import captured
from tests.support.sdk import EVENT, NOW, SECRET, Answer, Script, client, error, recorded, signed

RECONCILED = {"id": "st_1", "currency": "USD", "gross": 10000, "fees": 320, "net": 9680, "lines": 2,
              "status": "reconciled", "created_at": "2026-12-08T02:00:00.000Z"}  # fmt: skip
AMOUNT_DIFFERS = {"reference": "pay_1", "gateway_line": "sl_1", "reason": "amount_differs", "ledger_amount": 1999,
                  "gateway_amount": 2004}  # fmt: skip
NOT_SETTLED = {"reference": "re_1", "gateway_line": None, "reason": "not_settled", "ledger_amount": -500,
               "gateway_amount": None}  # fmt: skip
MISMATCHED = {**RECONCILED, "id": "st_2", "status": "mismatched", "mismatches": [AMOUNT_DIFFERS, NOT_SETTLED]}


def listing(*items: dict, has_more: bool = False) -> Answer:
    return Answer(200, {"data": [{k: v for k, v in item.items() if k != "mismatches"} for item in items],
                        "has_more": has_more})  # fmt: skip


def test_a_page_is_asked_for_with_its_limit_and_cursor_and_typed_without_mismatches():
    script = Script(listing(MISMATCHED, RECONCILED, has_more=True))
    page = client(script)[0].list_settlements(limit=2, starting_after="st_9")
    (request,) = script.requests
    assert (request["method"], request["url"]) == ("GET", "http://api/settlements?limit=2&starting_after=st_9")
    assert "Idempotency-Key" not in request["headers"]
    assert page.has_more and [s.id for s in page.data] == ["st_2", "st_1"]
    assert page.data[0].status == "mismatched" and page.data[0].mismatches is None  # a listing does not show them
    assert page.data[1] == Settlement("st_1", "USD", 10000, 320, 9680, 2, "reconciled", "2026-12-08T02:00:00.000Z")


def test_a_page_without_arguments_asks_for_the_apis_defaults():
    script = Script(listing())
    page = client(script)[0].list_settlements()
    assert script.requests[0]["url"] == "http://api/settlements" and page.data == () and not page.has_more


def test_every_settlement_is_read_page_by_page_each_after_the_last_id_of_the_one_before():
    third = {**RECONCILED, "id": "st_3"}
    script = Script(listing(MISMATCHED, RECONCILED, has_more=True), listing(third))
    assert [s.id for s in client(script)[0].settlements(page_size=2)] == ["st_2", "st_1", "st_3"]
    assert [r["url"] for r in script.requests] == [
        "http://api/settlements?limit=2",
        "http://api/settlements?limit=2&starting_after=st_1",
    ]


def test_one_settlement_shows_what_each_side_says_of_each_mismatch():
    script = Script(Answer(200, MISMATCHED), Answer(200, {**RECONCILED, "mismatches": []}))
    sdk, _ = client(script)
    mismatched = sdk.get_settlement("st_2")
    assert script.requests[0]["url"] == "http://api/settlements/st_2"
    assert mismatched.mismatches == (
        SettlementMismatch("pay_1", "sl_1", "amount_differs", 1999, 2004),
        SettlementMismatch("re_1", None, "not_settled", -500, None),  # no line listed it: the gateway says nothing
    )
    assert sdk.get_settlement("st_1").mismatches == ()


def test_an_unknown_settlement_is_not_found_and_not_asked_again():
    script = Script(error(404, "invalid_request_error"), Answer(200, RECONCILED))
    with pytest.raises(NotFound):
        client(script)[0].get_settlement("st_404")
    assert len(script.requests) == 1


def test_a_cursor_the_api_refuses_is_an_invalid_request_naming_it():
    script = Script(error(400, "invalid_request_error", param="starting_after"))
    with pytest.raises(InvalidRequest) as refused:
        client(script)[0].list_settlements(starting_after="st_other")
    assert refused.value.param == "starting_after" and len(script.requests) == 1


@pytest.mark.parametrize("trouble", [requests.ConnectionError("reset"), error(503, "api_error")], ids=["lost", "503"])
def test_a_read_whose_answer_is_lost_or_unavailable_is_asked_again(trouble):
    script = Script(trouble, Answer(200, RECONCILED))
    assert client(script)[0].get_settlement("st_1").id == "st_1" and len(script.requests) == 2


@pytest.mark.parametrize("identifier", ["pay_1", "st_1/../../payments", "st_", "ST_1", "../tokens"])
def test_an_id_that_is_not_a_settlements_is_refused_before_anything_is_sent(identifier):
    sdk, recorder = recorded()
    with pytest.raises(InvalidId) as refused:
        sdk.get_settlement(identifier)
    assert recorder.sent == [] and refused.value.param == "settlement_id"


def test_the_ids_the_service_issues_are_sent_as_they_are():
    sdk, recorder = recorded()
    identifier = new_id("st")
    with pytest.raises(NotFound):
        sdk.get_settlement(identifier)
    assert recorder.sent[0].path_url == f"/settlements/{identifier}"


@pytest.mark.parametrize("event_type", ["settlement.mismatch", "settlement.reconciled"])
def test_a_settlement_events_object_is_the_settlement_with_its_mismatches(event_type):
    body = json.dumps({**EVENT, "type": event_type, "data": {"object": MISMATCHED}}).encode()
    event = verify_webhook(body, signed(body), SECRET, now=NOW)
    assert event.object == Settlement.of(MISMATCHED) and event.object_id == "st_2"
    assert isinstance(event.object, Settlement) and event.object.mismatches[0].gateway_amount == 2004


@pytest.mark.parametrize(
    ("argv", "url", "answer", "shown"),
    [
        (["settlements", "--limit", "1"], "http://api/settlements?limit=1", listing(RECONCILED),
         lambda out: out["data"][0]["id"] == "st_1" and out["has_more"] is False),
        (["settlement", "--settlement", "st_2"], "http://api/settlements/st_2", Answer(200, MISMATCHED),
         lambda out: out["mismatches"] == [AMOUNT_DIFFERS, NOT_SETTLED]),
    ],
    ids=["page", "one"],
)  # fmt: skip
def test_the_cli_reads_settlements(argv, url, answer, shown, monkeypatch, capsys):
    script = Script(answer)
    monkeypatch.setattr(cli.SigV4, "from_chain", lambda *args: None)
    monkeypatch.setattr(cli, "PaymentsClient", lambda url, _: PaymentsClient(url, auth=lambda r: r, session=script))
    assert cli.main(["--api-url", "http://api", *argv]) == 0
    assert [(r["method"], r["url"]) for r in script.requests] == [("GET", url)]
    assert shown(json.loads(capsys.readouterr().out))


# --- the SDK and the service agree ----------------------------------------------------------


def test_the_sdk_types_the_settlements_and_settlement_events_the_service_serves():
    """The bodies are the service's own (GET /settlements, GET /events on the fakes, after an import of a settlement
    whose second line the gateway adjusted), the event serialised and signed as its delivery does."""
    gateway = FakeGateway()
    world = fake_world(gateway)
    matched, adjusted = captured(world, 1000), captured(world, 2000)
    (made,) = gateway.settle(adjust={adjusted: 5})
    merchants = [world.tenancy.dependencies(m) for m in world.tenancy.directory.merchants()]
    import_settlements(gateway, FakeSettlementImports(world.db), merchants, world.clock)
    listed = world.service.list_settlements(None, None).body
    (item,) = [Settlement.of(body) for body in listed["data"]]
    one = Settlement.of(world.service.get_settlement(made.id).body)
    assert (item.id, item.status, item.lines, item.mismatches) == (made.id, "mismatched", 2, None)
    assert one.mismatches == (SettlementMismatch(adjusted, one.mismatches[0].gateway_line, "amount_differs", 2000,
                                                 2005),)  # fmt: skip
    assert (one.gross, one.net) == (3005, 3005 - one.fees) and one.mismatches[0].reference != matched
    (body,) = world.service.list_events(None, None, "settlement.mismatch").body["data"]
    raw = json.dumps(body, separators=(",", ":")).encode()
    event = verify_webhook(raw, service_signature(SECRET, raw, NOW), SECRET, now=NOW)
    assert event == Event.of(body) and event.object == one and event.object_id == made.id
