"""The functions' body validators (lambdas/request_bodies.py) are generated, current, and refuse what the pydantic
models (lambdas/models.py) refuse, with the same errors, and accept what they accept, as the same values."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from lambdas import models, request_bodies
from tools.request_bodies import OUTPUT, render, request_models

BODIES = {name: getattr(models, name) for name in (body.__name__ for body in request_bodies.SCHEMAS)}
MEMBER_NAMES = sorted({name for model in request_models() for name in model.model_fields})


@pytest.mark.integration  # ruff formats what is generated, in a process of its own
def test_the_checked_in_validators_are_current():
    assert OUTPUT.read_text() == render(), "lambdas/request_bodies.py is stale: run `make openapi` and commit it"


def test_every_body_a_handler_validates_has_its_model():
    assert set(BODIES) == {"TokenRequest", "PaymentRequest", "RefundRequest", "CaptureRequest", "CancelRequest",
                           "WebhookEndpointRequest", "RedeliverRequest"}  # fmt: skip


def _values(value: Any) -> Any:
    """A validated body's members, nested, as plain values (pydantic's own bookkeeping left out)."""
    if isinstance(value, BaseModel):
        return {name: _values(getattr(value, name)) for name in type(value).model_fields}
    if hasattr(value, "__dict__"):
        return {name: _values(item) for name, item in vars(value).items() if not name.startswith("__pydantic")}
    if isinstance(value, dict):
        return {key: _values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_values(item) for item in value]
    return value


def _outcome(validate: Any, body: object) -> tuple[str, Any]:
    try:
        return "accepted", _values(validate(body))
    except ValidationError as error:
        errors = error.errors(include_input=False, include_url=False)
        return "refused", [{**e, "ctx": {k: str(v) for k, v in e.get("ctx", {}).items()}} for e in errors]


def assert_same(name: str, body: object) -> None:
    compiled = getattr(request_bodies, name)
    expected = _outcome(BODIES[name].model_validate, body)
    assert _outcome(lambda value: request_bodies.validate(compiled, value), body) == expected
    assert type(request_bodies.validate(compiled, body)) is compiled if expected[0] == "accepted" else True


CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}
TOO_MANY_KEYS = dict.fromkeys("abcdefghijklmnopqrstu", "")  # 21 metadata members
CASES = [
    ("TokenRequest", {"card": CARD}),
    ("TokenRequest", {"card": {**CARD, "holder_name": "A", "cvc": "123"}}),
    ("TokenRequest", {"card": {**CARD, "exp_month": "12", "number": 4242}}),
    ("TokenRequest", {"card": "4242424242424242"}),
    ("TokenRequest", {"card": {**CARD, "holder_name": "x" * 201}, "extra": 1}),
    ("TokenRequest", []),
    ("PaymentRequest", {"amount": 100, "currency": "usd", "source": {"token": "tok_1"}}),
    ("PaymentRequest", {"amount": 100, "currency": "usd", "source": {"card": {**CARD, "cvc": "123"}}}),
    ("PaymentRequest", {"amount": 100, "currency": "usd", "source": {}}),
    ("PaymentRequest", {"amount": 100, "currency": "usd", "source": {"token": "t", "card": {**CARD, "cvc": "1"}}}),
    ("PaymentRequest", {"amount": 1.0, "currency": "us", "source": {"token": ""}, "capture": 1}),
    ("PaymentRequest", {"amount": 1, "currency": "usd", "source": {"token": "t"}, "metadata": {"": "x", "k": 1}}),
    ("PaymentRequest", {"amount": 1, "currency": "usd", "source": {"token": "t"}, "metadata": TOO_MANY_KEYS}),
    ("PaymentRequest", {"amount": True, "currency": None, "source": None, "description": "d" * 501}),
    ("RefundRequest", {}),
    ("RefundRequest", {"amount": None}),
    ("RefundRequest", {"amount": "5"}),
    ("CaptureRequest", {"amount": 5}),
    ("CaptureRequest", {"amount": 5, "currency": "usd"}),
    ("CancelRequest", {}),
    ("CancelRequest", {"reason": "x"}),
    ("WebhookEndpointRequest", {"url": "https://example.test/hook", "events": ["*"]}),
    ("WebhookEndpointRequest", {"url": "", "events": []}),
    ("WebhookEndpointRequest", {"url": "u", "events": ["e" * 65, 3] + ["e"] * 40}),
    ("RedeliverRequest", {}),
    ("RedeliverRequest", {"x": None}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body"), CASES)
def test_the_validators_answer_as_the_models(name, body):
    assert_same(name, body)


KEYS = st.sampled_from(MEMBER_NAMES) | st.text()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(BODIES)), st.dictionaries(st.sampled_from(MEMBER_NAMES), JSON, max_size=8))
def test_the_validators_answer_as_the_models_for_any_json(name, body):
    assert_same(name, body)


CARD_NUMBER, BAD_CVC = "4242424242424242", "987654321"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("TokenRequest", {"card": {"number": CARD_NUMBER * 3, "exp_month": 12, "exp_year": 2030, "cvc": BAD_CVC}}),
        ("TokenRequest", {"card": {"number": int(CARD_NUMBER), "exp_month": 12, "exp_year": 2030}}),
        ("PaymentRequest", {"amount": 1, "currency": "usd", "source": {"card": {"number": CARD_NUMBER, "cvc": 123}}}),
    ],
)
def test_a_refusals_text_never_carries_what_was_sent(name, body):
    with pytest.raises(ValidationError) as refused:
        request_bodies.validate(getattr(request_bodies, name), body)
    text = str(refused.value) + repr(refused.value.errors(include_input=False))  # as the edge reads them
    assert CARD_NUMBER not in text and BAD_CVC not in text and "123" not in text
