"""Requests to the HTTP edge through the real handlers, and checks of the answers against the API reference."""

import boto3

from tests.service_fixtures import REGION
from tests.support.api_reference import ERROR_CODES
from tests.support.events import body_of, invoke

VISA = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}
CVC = "737"


def card(number="4242424242424242", cvc=CVC, **overrides):
    return {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": cvc, **overrides}


def tokenize(number="4242424242424242") -> str:
    response = invoke("POST", "/tokens", {"card": {**VISA, "number": number}})
    assert response["statusCode"] == 201
    return body_of(response)["token"]


def pay(body: dict, key: str = "key-1", **kwargs) -> dict:
    return invoke("POST", "/payments", body, headers={"Idempotency-Key": key}, **kwargs)


ERROR_FIELDS = {"type", "code", "message", "param", "decline_code", "payment_id", "refund_id", "request_id"}


def assert_error(response: dict, status: int, error_type: str, param: str | None = None) -> dict:
    """The response is a documented error of this status and type (naming ``param`` when given); returns it."""
    assert response["statusCode"] == status, response["body"]
    error = body_of(response)["error"]
    assert error["type"] == error_type
    assert error["request_id"] and error["message"]
    assert ERROR_CODES[error["code"]][1] == error_type, f"{error['code']} is not a documented {error_type} code"
    assert ERROR_CODES[error["code"]][0] in (str(status), "4xx"), f"{error['code']} is not documented for {status}"
    assert set(error) <= ERROR_FIELDS, set(error) - ERROR_FIELDS
    if param:
        assert error["param"] == param
    return error


def stored_items(env) -> int:
    """How many items the ledger and idempotency tables hold."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    return sum(dynamodb.scan(TableName=env[t], Select="COUNT")["Count"] for t in ("LEDGER_TABLE", "IDEMPOTENCY_TABLE"))


# (a payment request the contract refuses, the field its 400 names or starts with)
BAD_PAYMENTS = [
    ({"amount": "1999", "currency": "usd", "source": {"token": "tok_x"}}, "amount"),
    ({"amount": 19.99, "currency": "usd", "source": {"token": "tok_x"}}, "amount"),
    ({"amount": 0, "currency": "usd", "source": {"token": "tok_x"}}, "amount"),
    ({"amount": -5, "currency": "usd", "source": {"token": "tok_x"}}, "amount"),
    ({"amount": 100_000_000, "currency": "usd", "source": {"token": "tok_x"}}, "amount"),
    ({"amount": 100, "currency": "xyz", "source": {"token": "tok_x"}}, "currency"),
    ({"amount": 100, "currency": "usd", "source": {"token": "tok_unknown"}}, "source.token"),
    ({"amount": 100, "currency": "usd", "source": {}}, "source"),
    ({"amount": 100, "currency": "usd", "source": {"card": card("4242424242424241")}}, "source.card.number"),
    ({"amount": 100, "currency": "usd", "source": {"card": card(exp_year=2020)}}, "source.card.exp_year"),
    ({"amount": 100, "currency": "usd", "source": {"card": card(exp_month=13)}}, "source.card.exp_month"),
    ({"amount": 100, "currency": "usd", "source": {"card": card(cvc="12")}}, "source.card.cvc"),
    ({"amount": 100, "currency": "usd", "source": {"card": {**VISA}}}, "source.card.cvc"),
    ({"amount": 100, "currency": "usd", "source": {"token": "tok_x"}, "surprise": 1}, "surprise"),
    ({"amount": 100, "currency": "usd", "source": {"token": "tok_x"}, "description": "x" * 501}, "description"),
    ({"amount": 100, "currency": "usd", "source": {"token": "tok_x"}, "metadata": {"k": 1}}, "metadata.k"),
    ({"amount": 100, "currency": "usd", "source": {"token": "tok_x"}, "metadata": {"k" * 41: "v"}}, "metadata"),
    (
        {"amount": 100, "currency": "usd", "source": {"token": "tok_x"}, "metadata": {f"k{n}": "v" for n in range(21)}},
        "metadata",
    ),
    (
        {"amount": 100, "currency": "usd", "source": {"token": "tok_x"}, "description": "for 4242 4242 4242 4242"},
        "description",
    ),
    (
        {"amount": 100, "currency": "usd", "source": {"token": "tok_x"}, "metadata": {"pan": "5555555555554444"}},
        "metadata.pan",
    ),
]
