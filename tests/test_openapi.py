"""The checked-in OpenAPI description is generated, current, and true to the handlers."""


import pytest

from lambdas import response_models
from lambdas.routes import ROUTES
from tests.events import body_of, invoke
from tests.test_api import card, pay
from tools.openapi import OUTPUT, build, render


def test_the_checked_in_description_is_current():
    assert OUTPUT.read_text() == render(), "docs/openapi.json is stale: run `make openapi` and commit it"


def test_it_is_openapi_3_1_and_describes_every_route():
    document = build()
    assert document["openapi"] == "3.1.0"
    described = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert described == {(route.method, route.path) for route in ROUTES}
    idempotent = document["paths"]["/payments"]["post"]["parameters"][0]
    assert (idempotent["name"], idempotent["required"]) == ("Idempotency-Key", True)


def test_every_body_the_handlers_answer_matches_the_description(aws_env):
    token = body_of(invoke("POST", "/tokens", {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}))
    response_models.TokenResponse.model_validate(token)
    payment = body_of(pay({"amount": 900, "currency": "usd", "source": {"token": token["token"]},
                           "description": "d", "metadata": {"k": "v"}}))  # fmt: skip
    response_models.PaymentResponse.model_validate(payment)
    refund = body_of(invoke("POST", f"/payments/{payment['id']}/refunds", {"amount": 1}, headers={"Idempotency-Key": "r"}))
    response_models.RefundResponse.model_validate(refund)
    response_models.LedgerResponse.model_validate(body_of(invoke("GET", f"/payments/{payment['id']}/ledger")))
    declined = body_of(pay({"amount": 5, "currency": "usd", "source": {"card": card("4000000000000002")}}, key="d"))
    response_models.ErrorResponse.model_validate(declined)
    declined_payment = body_of(invoke("GET", f"/payments/{declined['error']['payment_id']}"))
    response_models.PaymentResponse.model_validate(declined_payment)
    with pytest.raises(ValueError):  # the models are strict enough to notice a wrong body
        response_models.PaymentResponse.model_validate({**payment, "pan": "x"})
