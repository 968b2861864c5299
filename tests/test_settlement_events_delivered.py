"""The deployed path in process (the handlers on moto): a merchant's share of a settlement, recorded and completed in
the ledger table as the import does, is read through GET /settlements and GET /events as the contract shows it, and
its settlement.mismatch event reaches a subscribed webhook endpoint, signed, verified by the SDK."""

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from client import verify_webhook
from lambdas import bootstrap
from lambdas.domain.ids import new_id
from lambdas.domain.merchants import Caller
from lambdas.domain.settlements import Mismatch, MismatchReason, Settlement, ShareLine
from lambdas.handlers import deliver
from lambdas.response_models import EventResponse, SettlementDetailResponse, SettlementListResponse
from lambdas.use_cases import Dependencies
from lambdas.use_cases.settlements import complete_share
from tests.support.api import assert_error
from tests.support.events import body_of, invoke
from tests.support.webhook_receiver import Receiver, receiving, use_local_delivery

pytestmark = pytest.mark.integration
LOCAL_MERCHANT = Caller("arn:aws:iam::123456789012:user/local", "123456789012")  # whom invoke() signs as


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(failures=0) as server:
        yield server


def merchant_deps() -> Dependencies:
    served = bootstrap.adapters().tenancy().service_for(LOCAL_MERCHANT)
    assert served is not None
    return served[1].deps


def mismatched_share(deps: Dependencies, minutes_ago: int = 0) -> Settlement:
    """A settlement with one matched line and one whose amount differs, recorded and completed as the import does."""
    created = int((deps.clock() - timedelta(minutes=minutes_ago)).timestamp())
    made = Settlement(new_id("st"), "USD", created, 0, 0, 0, 0)
    adjusted = new_id("pay")
    differs = Mismatch(adjusted, "sl_2", MismatchReason.AMOUNT_DIFFERS, 1000, 1005, "USD", "USD")
    for line in (ShareLine("sl_1", new_id("pay"), 2000, 88), ShareLine("sl_2", adjusted, 1005, 59, differs)):
        uow = deps.store.unit_of_work()
        deps.store.add_share_line(uow, made, line, None, [])
        uow.commit()
    complete_share(deps, made)
    return made


def test_settlements_read_over_http_as_the_contract_shows_them(aws_env):
    """Breaks if the READ function did not serve the routes, paged them wrongly, or answered an unknown id other
    than with the contract's 404."""
    deps = merchant_deps()
    older, newer = mismatched_share(deps, minutes_ago=5), mismatched_share(deps)
    shown = body_of(invoke("GET", f"/settlements/{newer.id}"))
    SettlementDetailResponse.model_validate(shown)
    assert (shown["gross"], shown["fees"], shown["net"], shown["lines"]) == (3005, 147, 2858, 2)
    assert shown["mismatches"] == [
        {"reference": shown["mismatches"][0]["reference"], "gateway_line": "sl_2", "reason": "amount_differs",
         "ledger_amount": 1000, "gateway_amount": 1005}
    ]  # fmt: skip
    first = body_of(invoke("GET", "/settlements?limit=1"))
    SettlementListResponse.model_validate(first)
    assert ([s["id"] for s in first["data"]], first["has_more"]) == ([newer.id], True)
    rest = body_of(invoke("GET", f"/settlements?limit=1&starting_after={newer.id}"))
    assert ([s["id"] for s in rest["data"]], rest["has_more"]) == ([older.id], False)
    assert_error(invoke("GET", "/settlements/st_" + "0" * 24), 404, "invalid_request_error")
    assert_error(invoke("GET", "/settlements?limit=0"), 400, "invalid_request_error", "limit")
    assert_error(invoke("GET", "/settlements?starting_after=st_x"), 400, "invalid_request_error", "starting_after")


def test_a_settlement_mismatch_event_is_listed_by_type_and_delivered_signed(aws_env, monkeypatch, receiver):
    """Breaks if a settlement's event could not be stored or read (it has no payment), showed the share other than
    GET does, slipped through another type's filter, or never reached an endpoint subscribed to its type."""
    use_local_delivery(monkeypatch)
    subscription = {"url": receiver.url, "events": ["settlement.mismatch"]}
    created = invoke("POST", "/webhook_endpoints", subscription, headers={"Idempotency-Key": "we"})
    assert created["statusCode"] == 201, created["body"]
    made = mismatched_share(merchant_deps())
    (event,) = body_of(invoke("GET", "/events?type=settlement.mismatch"))["data"]
    EventResponse.model_validate(event)
    assert event["data"]["object"] == body_of(invoke("GET", f"/settlements/{made.id}"))
    assert body_of(invoke("GET", f"/events/{event['id']}")) == event
    assert body_of(invoke("GET", "/events?type=payment.succeeded"))["data"] == []
    deliver.handler({"source": "aws.events"}, None)
    ((headers, body),) = receiver.received
    delivered = verify_webhook(body, headers["Payments-Signature"], body_of(created)["secret"])
    assert delivered.id == event["id"] and json.loads(body) == event
