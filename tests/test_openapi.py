"""The checked-in OpenAPI description is generated, current, and true to the contract and the handlers."""

import json

import pytest
from pydantic import ValidationError

from lambdas import response_models
from lambdas.handlers import checkpoint as checkpoint_handler
from tests.support.api import card, pay
from tests.support.events import body_of, invoke
from tools.openapi import OUTPUT, render


def test_the_checked_in_description_is_current():
    assert OUTPUT.read_text() == render(), "docs/openapi.json is stale: run `make openapi` and commit it"


# The routes of shared/docs/api-contract.md that the service serves today, written out from the contract (not from
# lambdas.routes, which the document is built from): whether each requires an Idempotency-Key, and the statuses
# the contract promises for it (every route may also answer 403, 429 and 500).
CONTRACT_ROUTES = {
    ("POST", "/tokens"): (False, {201, 400, 413, 415}),
    ("POST", "/payments"): (True, {201, 400, 402, 409, 413, 415, 422, 502, 504}),
    ("GET", "/payments/{id}"): (False, {200, 404}),
    ("POST", "/payments/{id}/refunds"): (True, {201, 400, 404, 409, 413, 415, 422, 502, 504}),
    ("POST", "/payments/{id}/capture"): (True, {200, 400, 404, 409, 413, 415, 422, 502, 504}),
    ("POST", "/payments/{id}/cancel"): (True, {200, 400, 404, 409, 413, 415, 422, 502, 504}),
    ("GET", "/payments/{id}/ledger"): (False, {200, 404}),
    ("GET", "/balances"): (False, {200}),
    ("GET", "/payments"): (False, {200, 400}),
    ("GET", "/ledger/checkpoints"): (False, {200, 400}),
    ("GET", "/ledger/checkpoints/latest"): (False, {200, 404}),
    ("GET", "/ledger/checkpoints/{sequence}"): (False, {200, 404}),
    ("GET", "/ledger/public-key"): (False, {200}),
    ("GET", "/settlements"): (False, {200, 400}),
    ("GET", "/settlements/{id}"): (False, {200, 404}),
    ("GET", "/events"): (False, {200, 400}),
    ("GET", "/events/{id}"): (False, {200, 404}),
    ("GET", "/events/{id}/deliveries"): (False, {200, 404}),
    ("POST", "/events/{id}/redeliver"): (True, {202, 400, 404, 409, 413, 415, 422}),
    ("POST", "/webhook_endpoints"): (True, {201, 400, 409, 413, 415, 422}),
    ("GET", "/webhook_endpoints"): (False, {200}),
    ("DELETE", "/webhook_endpoints/{id}"): (False, {200, 404}),
}
EVERY_ROUTE_STATUSES = {403, 429, 500}


def test_it_is_openapi_3_1_and_describes_the_contract_routes():
    document = json.loads(OUTPUT.read_text())
    assert document["openapi"] == "3.1.0"
    operations = {(method.upper(), path): operation for path, item in document["paths"].items()
                  for method, operation in item.items()}  # fmt: skip
    assert set(operations) == set(CONTRACT_ROUTES)
    for route, (idempotent, statuses) in CONTRACT_ROUTES.items():
        operation = operations[route]
        headers = {p["name"]: p.get("required", False) for p in operation.get("parameters", []) if p["in"] == "header"}
        assert headers.get("Idempotency-Key", False) is idempotent, route
        assert {int(status) for status in operation["responses"]} >= statuses | EVERY_ROUTE_STATUSES, route


def test_every_body_the_handlers_answer_matches_the_description(aws_env):
    token = body_of(
        invoke("POST", "/tokens", {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}})
    )
    response_models.TokenResponse.model_validate(token)
    payment = body_of(pay({"amount": 900, "currency": "usd", "source": {"token": token["token"]},
                           "description": "d", "metadata": {"k": "v"}}))  # fmt: skip
    response_models.PaymentResponse.model_validate(payment)
    refund = body_of(
        invoke("POST", f"/payments/{payment['id']}/refunds", {"amount": 1}, headers={"Idempotency-Key": "r"})
    )
    response_models.RefundResponse.model_validate(refund)
    response_models.LedgerResponse.model_validate(body_of(invoke("GET", f"/payments/{payment['id']}/ledger")))
    declined = body_of(pay({"amount": 5, "currency": "usd", "source": {"card": card("4000000000000002")}}, key="d"))
    response_models.ErrorResponse.model_validate(declined)
    declined_payment = body_of(invoke("GET", f"/payments/{declined['error']['payment_id']}"))
    response_models.PaymentResponse.model_validate(declined_payment)
    assert checkpoint_handler.handler({"source": "aws.events"}, None)["written"] >= 1
    response_models.CheckpointResponse.model_validate(body_of(invoke("GET", "/ledger/checkpoints/latest")))
    response_models.CheckpointResponse.model_validate(body_of(invoke("GET", "/ledger/checkpoints/1")))
    response_models.CheckpointListResponse.model_validate(body_of(invoke("GET", "/ledger/checkpoints")))
    response_models.PublicKeyResponse.model_validate(body_of(invoke("GET", "/ledger/public-key")))
    listed = body_of(invoke("GET", "/events?type=refund.succeeded"))
    response_models.EventListResponse.model_validate(listed)
    assert [event["data"]["object"]["id"] for event in listed["data"]] == [refund["id"]]
    events = body_of(invoke("GET", "/events?limit=100"))["data"]
    assert {event["type"] for event in events} == {"payment.succeeded", "payment.declined", "refund.succeeded"}
    for event in events:
        response_models.EventResponse.model_validate(body_of(invoke("GET", f"/events/{event['id']}")))
    endpoint = {"url": "https://93.184.216.34/hooks", "events": ["*"]}  # an address: nothing to resolve
    created = body_of(invoke("POST", "/webhook_endpoints", endpoint, headers={"Idempotency-Key": "we-1"}))
    response_models.WebhookEndpointResponse.model_validate(created)
    response_models.WebhookEndpointListResponse.model_validate(body_of(invoke("GET", "/webhook_endpoints")))
    deleted = body_of(invoke("DELETE", f"/webhook_endpoints/{created['id']}"))
    response_models.WebhookEndpointResponse.model_validate(deleted)
    event_id = events[0]["id"]
    redelivered = invoke("POST", f"/events/{event_id}/redeliver", {}, headers={"Idempotency-Key": "re-1"})
    response_models.RedeliveryResponse.model_validate(body_of(redelivered))
    response_models.DeliveryListResponse.model_validate(body_of(invoke("GET", f"/events/{event_id}/deliveries")))
    with pytest.raises(ValidationError) as refused:  # the models are strict enough to notice a wrong body
        response_models.PaymentResponse.model_validate({**payment, "pan": "x"})
    assert [(error["loc"], error["type"]) for error in refused.value.errors()] == [(("pan",), "extra_forbidden")]
