"""A card number in free text is one to the service whatever spaces group its digits: a no-break space (what word
processors, web pages and macOS Option-Space insert), a narrow no-break space (French formatting), two spaces, or
spaced dashes. Such a description is refused, and such a member's name is not echoed in an error, so the number is
never stored, hashed into an idempotency digest or returned."""

import json
import re

import pytest

from lambdas.edge import ApiHandler
from lambdas.handlers.charge import create_payment
from lambdas.routes import Function
from tests.support.fakes import fake_world
from tests.support.fakes_gateway import FakeGateway
from tools.api_events import LambdaContext, api_event

SPELLINGS = {
    "no-break-space": "4242\u00a04242\u00a04242\u00a04242",
    "narrow-no-break-space": "4242\u202f4242\u202f4242\u202f4242",
    "two-spaces": "4242  4242  4242  4242",
    "spaced-dashes": "4242 - 4242 - 4242 - 4242",
}
CARD = {"number": "5555555555554444", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


def _post(body: dict) -> dict:
    world = fake_world(FakeGateway())
    handler = ApiHandler(Function.CHARGE, {"POST /payments": create_payment}, lambda: world.tenancy)
    response = handler(api_event("POST", "/payments", body, headers={"Idempotency-Key": "spell"}), LambdaContext(25))
    return response, world


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_a_card_number_in_the_description_is_refused(spelling):
    response, world = _post(
        {"amount": 1000, "currency": "usd", "source": {"card": CARD}, "description": f"card {spelling}"}
    )
    stored = [p.description for p in world.ledger.payments.values()]
    assert response["statusCode"] == 400, (response["statusCode"], stored)


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_an_unknown_member_named_by_a_card_number_is_not_echoed(spelling):
    response, _ = _post({"amount": 1000, "currency": "usd", "source": {"card": CARD}, spelling: "x"})
    error = json.loads(response["body"])["error"]
    for field in ("message", "param"):
        assert "4242424242424242" not in re.sub(r"\D", "", error.get(field) or ""), error
