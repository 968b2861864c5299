"""The SDK's promises on a scripted transport: retries reuse one idempotency key per logical call, stop when the
budget is spent, wait with bounded jitter, and every answer becomes a typed result or a typed error."""

import inspect
import json

import pytest
import requests
from botocore.credentials import Credentials

import client.__main__ as cli
from client import (
    AnswerLost,
    CardDeclined,
    GatewayFailed,
    GatewayPending,
    IdempotencyConflict,
    InvalidId,
    InvalidRequest,
    NotFound,
    PaymentsClient,
    PaymentStatusConflict,
    PermissionDenied,
    RateLimited,
    ServiceError,
    SigV4,
)
from client.client import FIRST_WAIT_SECONDS, MAX_WAIT_SECONDS
from client.signing import API_KEY_SETTING, API_KEY_VARIABLE
from lambdas.domain.ids import new_id
from tests.support.cases import assert_holds_for_each
from tests.support.sdk import PAYMENT, Answer, Recorder, Script, client, error, recorded


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


@pytest.mark.parametrize(
    ("call", "code", "ids"),
    [
        (lambda sdk: sdk.pay(1999, "usd", token="tok_1"), "payment_failed", {"payment_id": "pay_9"}),
        (lambda sdk: sdk.refund("pay_9", 500), "refund_failed", {"payment_id": "pay_9", "refund_id": "re_9"}),
    ],
    ids=["payment", "refund"],
)
def test_a_payment_or_refund_given_up_is_a_final_error_never_retried_nor_pending(call, code, ids):
    script = Script(error(402, "gateway_error", code=code, **ids), Answer(201, PAYMENT))
    with pytest.raises(GatewayFailed) as failed:
        call(client(script)[0])
    assert not isinstance(failed.value, (GatewayPending, CardDeclined)) and len(script.requests) == 1
    assert (failed.value.status, failed.value.code) == (402, code)
    assert (failed.value.payment_id, failed.value.refund_id) == (ids["payment_id"], ids.get("refund_id"))
    assert failed.value.idempotency_key == script.requests[0]["headers"]["Idempotency-Key"]


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


def path_methods() -> list[tuple[str, str]]:
    """Every SDK method that puts an argument in a path (an id or a sequence), and that argument's name."""
    found = []
    for name, method in inspect.getmembers(PaymentsClient, inspect.isfunction):
        for parameter in inspect.signature(method).parameters:
            if not name.startswith("_") and (parameter.endswith("_id") or parameter in ("id", "sequence")):
                found.append((name, parameter))
    return found


MALFORMED_IDS = ["..", ".", "%2e%2e", "%2E", "", "pay_", "pay_1/../../tokens", "pay_1/refunds", "../tokens",
                 "pay_1?x=1", "pay_1#frag", "pay_1%2F..", "pay_1\n", " pay_1", "PAY_1", "tok_1", "pay_1.", "pay_١",
                 "4242424242424242", None, 7]  # fmt: skip
MALFORMED_SEQUENCES = ["..", ".", "1", "", None, True, 0, -1, 1.5]  # a sequence is a whole number from 1


def test_every_method_that_builds_a_path_is_checked():
    expected = {(method, "payment_id") for method in ("payment", "refund", "ledger", "capture", "cancel")}
    assert expected <= set(path_methods())


def _refused_before_sending(method: str, parameter: str, identifier: object) -> bool:
    """The SDK method refuses the argument as an invalid id naming it, without echoing a card number, and sends
    nothing."""
    sdk, recorder = recorded()
    try:
        getattr(sdk, method)(**{parameter: identifier})
    except InvalidId as refused:
        return (
            recorder.sent == []
            and isinstance(refused, InvalidRequest)
            and isinstance(refused, ValueError)
            and refused.param == parameter
            and "4242424242424242" not in str(refused)
        )
    return False


def test_a_malformed_id_is_refused_before_anything_is_sent():
    """``requests`` undoes the escaping of unreserved characters (``%2E`` is sent as ``.``), so no escaping keeps
    ``..`` out of a path: only ids shaped as the service issues them are put in one."""
    cases = [
        (method, parameter, identifier)
        for method, parameter in path_methods()
        for identifier in (MALFORMED_SEQUENCES if parameter == "sequence" else MALFORMED_IDS)
    ]
    assert_holds_for_each(cases, lambda case: _refused_before_sending(*case), "not refused before sending")


@pytest.mark.parametrize("method", ["payment", "refund", "ledger", "capture", "cancel"])
def test_the_ids_the_service_issues_are_sent_as_they_are(method):
    sdk, recorder = recorded()
    identifier = new_id("pay")
    with pytest.raises(NotFound):
        getattr(sdk, method)(identifier)
    assert recorder.sent[0].path_url.split("/")[2] == identifier


# --- the merchant's key and rate ---------------------------------------------------------


def rate_limited(retry_after: str) -> Answer:
    answer = error(429, "rate_limit_error")
    answer.headers["Retry-After"] = retry_after
    return answer


def test_a_429_is_retried_no_sooner_than_its_retry_after():
    script = Script(rate_limited("3"), Answer(201, PAYMENT))
    sdk, clock = client(script)
    assert sdk.pay(1999, "usd", token="tok_1").id == "pay_1"
    assert clock.waits[0] >= 3 and len(script.requests) == 2


@pytest.mark.parametrize("retry_after", ["²", "1.5", "soon", ""])
def test_a_429_whose_retry_after_is_no_whole_number_is_still_a_typed_answer(retry_after):
    """A proxy's Retry-After that is not ASCII digits is not read (Unicode digits such as "²" pass str.isdigit):
    the SDK waits as for a 429 without one and ends in its own error, never a ValueError."""
    script = Script(*[rate_limited(retry_after)] * 50)
    sdk, clock = client(script, budget=9.0)
    with pytest.raises(RateLimited) as limited:
        sdk.pay(1999, "usd", token="tok_1", key="order-9")
    assert limited.value.retry_after is None and clock.now < 9.0


def test_a_merchant_over_its_rate_past_the_budget_gets_a_typed_rate_limit_error():
    script = Script(*[rate_limited("2")] * 50)
    sdk, clock = client(script, budget=9.0)
    with pytest.raises(RateLimited) as limited:
        sdk.pay(1999, "usd", token="tok_1", key="order-9")
    assert (limited.value.status, limited.value.type, limited.value.retry_after) == (429, "rate_limit_error", 2.0)
    assert limited.value.idempotency_key == "order-9" and isinstance(limited.value, ServiceError)
    assert all(wait >= 2 for wait in clock.waits) and clock.now < 9.0 and len(script.requests) <= 5


def test_the_sdk_signs_its_idempotency_key_and_sends_the_merchants_api_key_signed():
    recorder, session = Recorder(), requests.Session()
    session.mount("http://", recorder)
    auth = SigV4(Credentials("AKIDEXAMPLE", "secret"), "us-east-1", "merchant-api-key")
    with pytest.raises(NotFound):
        PaymentsClient("http://api", auth=auth, session=session).pay(1999, "usd", token="tok_1", key="order-1")
    sent = recorder.sent[0].headers
    signed = sent["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert sent["x-api-key"] == "merchant-api-key" and sent["Idempotency-Key"] == "order-1"
    assert {"idempotency-key", "x-api-key"} <= set(signed)


def test_the_api_key_comes_from_the_environment_else_the_profile(tmp_path, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[globex]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = secret\nregion = us-east-1\n"
        f"{API_KEY_SETTING} = from-the-profile\n"
    )
    monkeypatch.delenv(API_KEY_VARIABLE, raising=False)
    assert SigV4.from_chain("globex", credentials_file=str(credentials)).api_key == "from-the-profile"
    monkeypatch.setenv(API_KEY_VARIABLE, "from-the-environment")
    assert SigV4.from_chain("globex", credentials_file=str(credentials)).api_key == "from-the-environment"


# --- authorise, then capture -------------------------------------------------------------

AUTHORIZED = {
    **PAYMENT,
    "status": "requires_capture",
    "amount_captured": 0,
    "amount_capturable": 1999,
    "capture_before": "2026-12-04T12:00:00.000Z",
}
CAPTURED = {**AUTHORIZED, "status": "succeeded", "amount_captured": 500, "amount_capturable": 0}
CANCELED = {**AUTHORIZED, "status": "canceled", "amount_capturable": 0, "cancellation_reason": "requested_by_customer"}


def test_an_authorisation_is_a_payment_request_with_capture_false_and_a_charge_is_sent_as_before():
    script = Script(Answer(201, AUTHORIZED), Answer(201, AUTHORIZED), Answer(201, PAYMENT))
    sdk, _ = client(script)
    held = sdk.authorize(1999, "usd", token="tok_1", metadata={"order": "A-1"})
    sdk.pay(1999, "usd", token="tok_1", metadata={"order": "A-1"}, capture=False)
    charged = sdk.pay(1999, "usd", token="tok_1", metadata={"order": "A-1"})
    authorize, pay_without_capture, charge = (r["json"] for r in script.requests)
    assert authorize == pay_without_capture == {**charge, "capture": False} and "capture" not in charge
    assert (held.status, held.amount_capturable, held.amount_captured) == ("requires_capture", 1999, 0)
    assert (held.capture_before, held.cancellation_reason) == ("2026-12-04T12:00:00.000Z", None)
    assert (charged.capture_before, charged.amount_captured, charged.amount_capturable) == (None, 0, 0)


def test_a_capture_sends_its_amount_or_nothing_for_all_with_a_key_of_its_own():
    script = Script(Answer(200, CAPTURED), Answer(200, {**CAPTURED, "id": "pay_2", "amount_captured": 1999}))
    sdk, _ = client(script)
    part = sdk.capture("pay_1", 500)
    whole = sdk.capture("pay_2")
    assert [(r["method"], r["url"], r["json"]) for r in script.requests] == [
        ("POST", "http://api/payments/pay_1/capture", {"amount": 500}),
        ("POST", "http://api/payments/pay_2/capture", {}),
    ]
    first, second = (r["headers"]["Idempotency-Key"] for r in script.requests)
    assert first and second and first != second
    assert (part.status, part.amount_captured, part.amount_capturable) == ("succeeded", 500, 0)
    assert (whole.id, whole.amount_captured) == ("pay_2", 1999)


def test_a_cancel_sends_an_empty_body_with_a_key_and_returns_the_canceled_payment():
    script = Script(Answer(200, CANCELED))
    canceled = client(script)[0].cancel("pay_1")
    (request,) = script.requests
    assert (request["method"], request["url"], request["json"]) == ("POST", "http://api/payments/pay_1/cancel", {})
    assert request["headers"]["Idempotency-Key"]
    assert (canceled.status, canceled.cancellation_reason, canceled.amount_capturable) == (
        "canceled",
        "requested_by_customer",
        0,
    )


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda sdk: sdk.capture("pay_1"), "payment_not_capturable"),
        (lambda sdk: sdk.cancel("pay_1"), "payment_not_cancelable"),
        (lambda sdk: sdk.refund("pay_1"), "payment_not_refundable"),
    ],
    ids=["capture", "cancel", "refund"],
)
def test_a_call_the_payments_status_refuses_is_a_typed_error_not_retried(call, code):
    """A second capture of a captured payment, say: the same call cannot succeed, so it is not asked again."""
    script = Script(Answer(200, CAPTURED), error(400, "invalid_request_error", code=code), Answer(200, CAPTURED))
    sdk, _ = client(script)
    sdk.capture("pay_1")
    with pytest.raises(PaymentStatusConflict) as refused:
        call(sdk)
    assert refused.value.code == code and isinstance(refused.value, InvalidRequest) and len(script.requests) == 2


def test_capturing_more_than_is_authorised_is_an_invalid_request_not_a_status_conflict():
    script = Script(error(400, "invalid_request_error", code="amount_too_large"))
    with pytest.raises(InvalidRequest) as refused:
        client(script)[0].capture("pay_1", 5000)
    assert refused.value.code == "amount_too_large" and not isinstance(refused.value, PaymentStatusConflict)


@pytest.mark.parametrize(
    "trouble",
    [requests.ConnectionError("reset"), error(502, "gateway_error", payment_id="pay_1"), error(504, "gateway_error")],
    ids=["connection", "502", "504"],
)
@pytest.mark.parametrize(
    ("call", "answer"),
    [(lambda sdk: sdk.capture("pay_1", 500), CAPTURED), (lambda sdk: sdk.cancel("pay_1"), CANCELED)],
    ids=["capture", "cancel"],
)
def test_a_capture_or_cancel_whose_answer_is_lost_is_asked_again_with_the_same_key_and_body(call, answer, trouble):
    script = Script(trouble, Answer(200, answer))
    payment = call(client(script)[0])
    first, second = script.requests
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]
    assert (first["url"], first["json"]) == (second["url"], second["json"]) and payment.status == answer["status"]


def test_a_capture_the_gateway_never_answers_ends_pending_naming_the_payment_and_the_key():
    script = Script(*[error(504, "gateway_error", payment_id="pay_1")] * 100)
    with pytest.raises(GatewayPending) as pending:
        client(script, budget=10.0)[0].capture("pay_1", key="ship-1")
    assert (pending.value.payment_id, pending.value.idempotency_key) == ("pay_1", "ship-1")
    assert {r["headers"]["Idempotency-Key"] for r in script.requests} == {"ship-1"} and len(script.requests) >= 2


@pytest.mark.parametrize(
    ("argv", "path", "body"),
    [
        (["authorize", "--amount", "1999", "--currency", "usd", "--token", "tok_1"], "/payments",
         {"amount": 1999, "currency": "usd", "source": {"token": "tok_1"}, "capture": False}),
        (["capture", "--payment", "pay_1", "--amount", "500"], "/payments/pay_1/capture", {"amount": 500}),
        (["capture", "--payment", "pay_1"], "/payments/pay_1/capture", {}),
        (["cancel", "--payment", "pay_1", "--key", "order-1"], "/payments/pay_1/cancel", {}),
    ],
    ids=["authorize", "capture-part", "capture", "cancel"],
)  # fmt: skip
def test_the_cli_authorizes_captures_and_cancels(argv, path, body, monkeypatch, capsys):
    script = Script(Answer(200, CANCELED))
    monkeypatch.setattr(cli.SigV4, "from_chain", lambda *args: None)
    monkeypatch.setattr(cli, "PaymentsClient", lambda url, _: PaymentsClient(url, auth=lambda r: r, session=script))
    assert cli.main(["--api-url", "http://api", *argv]) == 0
    (request,) = script.requests
    assert (request["method"], request["url"], request["json"]) == ("POST", "http://api" + path, body)
    assert request["headers"]["Idempotency-Key"] and json.loads(capsys.readouterr().out)["status"] == "canceled"
