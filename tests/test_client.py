"""The SDK's promises on a scripted transport: retries reuse one idempotency key per logical call, stop when the
budget is spent, wait with bounded jitter, and every answer becomes a typed result or a typed error."""

import pytest
import requests

from client import (
    AnswerLost,
    CardDeclined,
    GatewayPending,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    PaymentsClient,
    PermissionDenied,
    ServiceError,
)
from client.client import FIRST_WAIT_SECONDS, MAX_WAIT_SECONDS

PAYMENT = {
    "id": "pay_1",
    "status": "succeeded",
    "amount": 1999,
    "currency": "USD",
    "amount_refunded": 0,
    "card": {"brand": "visa", "last4": "4242", "fingerprint": "fp"},
    "gateway": {"name": "sparkle", "charge_id": "ch_1"},
    "metadata": {"order": "A-1"},
    "created_at": "2026-11-27T12:00:00.000Z",
}


class Answer:
    def __init__(self, status: int, body: dict, headers: dict | None = None) -> None:
        self.status_code, self._body, self.headers = status, body, headers or {}

    def json(self) -> dict:
        return self._body


def error(status: int, error_type: str, **fields) -> Answer:
    return Answer(status, {"error": {"type": error_type, "code": "c", "message": "m", "request_id": "r", **fields}})


class Script:
    """A session that answers from a list (an exception in the list is raised) and records every request."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.requests: list[dict] = []

    def request(self, method, url, json=None, headers=None, auth=None, timeout=None, allow_redirects=True):
        assert allow_redirects is False
        self.requests.append({"method": method, "url": url, "json": json, "headers": headers or {}})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now, self.waits = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def client(script: Script, budget: float = 60.0) -> tuple[PaymentsClient, Clock]:
    clock = Clock()
    return PaymentsClient("http://api", auth=lambda r: r, budget_seconds=budget, session=script, sleep=clock.sleep,
                          clock=clock), clock  # fmt: skip


@pytest.mark.parametrize(
    "trouble",
    [
        requests.ConnectionError("reset"),
        requests.Timeout("read"),
        error(409, "idempotency_error"),
        error(429, "rate_limit_error"),
        error(502, "gateway_error", payment_id="pay_1"),
        error(503, "api_error"),
        error(504, "gateway_error", payment_id="pay_1"),
    ],
    ids=["connection", "timeout", "409", "429", "502", "503", "504"],
)
def test_a_retried_answer_is_asked_again_with_the_same_key(trouble):
    script = Script(trouble, trouble, Answer(201, PAYMENT, {"Idempotent-Replayed": "true"}))
    payment = client(script)[0].pay(1999, "usd", token="tok_1")
    assert payment.id == "pay_1" and payment.replayed and payment.card.last4 == "4242"
    keys = {r["headers"]["Idempotency-Key"] for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1


def test_each_logical_call_has_its_own_key_unless_one_is_given():
    script = Script(Answer(201, PAYMENT), Answer(201, PAYMENT), Answer(201, PAYMENT))
    sdk, _ = client(script)
    sdk.pay(1999, "usd", token="tok_1")
    sdk.pay(1999, "usd", token="tok_1")
    sdk.pay(1999, "usd", token="tok_1", key="order-7")
    first, second, given = (r["headers"]["Idempotency-Key"] for r in script.requests)
    assert first != second and given == "order-7"


def test_a_gateway_that_never_answers_ends_in_gateway_pending_within_the_budget():
    script = Script(*[error(504, "gateway_error", payment_id="pay_1")] * 100)
    sdk, clock = client(script, budget=10.0)
    with pytest.raises(GatewayPending) as pending:
        sdk.pay(1999, "usd", token="tok_1")
    assert pending.value.payment_id == "pay_1" and pending.value.status == 504
    assert clock.now < 10.0 and 2 <= len(script.requests) < 100


def test_waits_are_jittered_doubling_and_capped():
    script = Script(*[error(503, "api_error")] * 12, Answer(201, PAYMENT))
    sdk, clock = client(script, budget=1000.0)
    sdk.pay(1999, "usd", token="tok_1")
    for attempt, wait in enumerate(clock.waits):
        assert 0 <= wait <= min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2**attempt)
    assert len(set(clock.waits)) > 1  # not one fixed wait


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (error(400, "invalid_request_error", param="amount"), InvalidRequest),
        (error(403, "permission_error"), PermissionDenied),
        (error(404, "invalid_request_error"), NotFound),
        (error(422, "idempotency_error"), IdempotencyConflict),
        (error(500, "api_error"), ServiceError),
    ],
)
def test_other_errors_are_typed_and_not_retried(answer, kind):
    script = Script(answer, Answer(201, PAYMENT))
    with pytest.raises(kind):
        client(script)[0].pay(1999, "usd", token="tok_1")
    assert len(script.requests) == 1


def test_a_decline_names_its_code_and_payment():
    script = Script(error(402, "card_error", decline_code="insufficient_funds", payment_id="pay_9"))
    with pytest.raises(CardDeclined) as declined:
        client(script)[0].pay(1999, "usd", token="tok_1")
    assert (declined.value.decline_code, declined.value.payment_id) == ("insufficient_funds", "pay_9")


def test_reads_and_refunds_are_typed():
    refund = {"id": "re_1", "payment_id": "pay_1", "amount": 500, "status": "succeeded", "created_at": "t"}
    entry = {
        "id": "e",
        "account": "customer",
        "direction": "debit",
        "amount": 1999,
        "currency": "USD",
        "created_at": "t",
    }
    script = Script(Answer(200, PAYMENT), Answer(201, refund), Answer(200, {"payment_id": "pay_1", "entries": [entry]}))
    sdk, _ = client(script)
    assert sdk.payment("pay_1").metadata == {"order": "A-1"}
    assert sdk.refund("pay_1", 500).amount == 500
    assert [e.direction for e in sdk.ledger("pay_1")] == ["debit"]
    assert [r["method"] for r in script.requests] == ["GET", "POST", "GET"]
    assert "Idempotency-Key" in script.requests[1]["headers"] and "Idempotency-Key" not in script.requests[0]["headers"]


def test_a_lost_answer_after_the_budget_is_typed_and_names_the_key_to_settle_with():
    script = Script(*[requests.ConnectionError("reset")] * 50)
    with pytest.raises(AnswerLost) as lost:
        client(script, budget=5.0)[0].pay(1999, "usd", token="tok_1", key="order-8")
    assert lost.value.idempotency_key == "order-8" and lost.value.type == "network_error"


def test_a_redirect_is_not_followed_nor_retried():
    script = Script(Answer(302, {}, {"Location": "http://elsewhere/"}), Answer(201, PAYMENT))
    with pytest.raises(ServiceError):
        client(script)[0].pay(1999, "usd", card={"number": "4242424242424242", "cvc": "123"})
    assert len(script.requests) == 1


@pytest.mark.parametrize("identifier", ["pay_1/refunds", "../tokens", "pay_1?x=1", "pay_1#frag", ".."])
def test_an_id_stays_one_path_segment(identifier):
    script = Script(error(404, "invalid_request_error"))
    with pytest.raises(NotFound):
        client(script)[0].payment(identifier)
    path = script.requests[0]["url"].removeprefix("http://api/payments/")
    assert "/" not in path and "?" not in path and "#" not in path and ".." not in path
