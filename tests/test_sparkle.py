"""The Sparkle client on its own: what each answer means, redirects, answer checks and the time budget, against a
scripted local HTTP server and the sandbox process. Behaviour shared with the fake is in test_gateway_contract.py."""

import contextvars
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from lambdas import deadline
from lambdas.adapters.sparkle import MIN_ATTEMPT_SECONDS, SparkleClient
from lambdas.domain.cards import parse_card
from lambdas.gateway import GatewayInvalidAnswer, GatewayOutcomeUnknown, GatewayRejected, GatewayUnavailable
from lambdas.gateway_settings import REQUESTS, SETTLEMENT_LINES, SETTLEMENTS, RetryPolicy
from lambdas.metrics import GATEWAY_LATENCY, NAMESPACE_VARIABLE
from sparkle_sandbox.server import DEFAULT_SECRET_KEY
from tools.emulator import free_port

CARD = parse_card("4242424242424242", 12, 2030, date(2026, 11, 26), "card", cvc="737")
ATTEMPTS = 3


def client(url: str, key: str = DEFAULT_SECRET_KEY, read_timeout: float = 1.0, backoff: float = 0.05):
    return SparkleClient(
        url, lambda: key, read_timeout=read_timeout, retry=RetryPolicy(attempts=ATTEMPTS, backoff_seconds=backoff)
    )


def within(seconds: float, call):
    """``call()`` inside a request whose deadline is ``seconds`` away (the context is not left changed)."""

    def run():
        deadline.start(seconds + deadline.WRITE_RESERVE_SECONDS)
        return call()

    return contextvars.copy_context().run(run)


class StubServer:
    """A local HTTP server that gives scripted answers (the last one repeats) and records every request (and,
    apart, its JSON body)."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, object, dict]] = []
        self.requests: list[tuple[str, str, str | None]] = []
        self.bodies: list[object] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def answer(self):
                content = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.bodies.append(json.loads(content) if content else None)
                stub.requests.append((self.command, self.path, self.headers.get("Idempotency-Key")))
                status, body, headers = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads, self.server.block_on_close = True, False
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def answer(self, status: int, body: object = None, headers: dict | None = None) -> "StubServer":
        self.answers.append((status, {} if body is None else body, headers or {}))
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def elsewhere():
    """Another server, where a redirect would send card data: it must never be called."""
    server = StubServer().answer(200, {})
    yield server
    server.close()


def charge_answer(**changes) -> dict:
    answer = {
        "id": "ch_1",
        "status": "succeeded",
        "decline_code": None,
        "amount": 1000,
        "amount_refunded": 0,
        "currency": "USD",
        "reference": "pay_1",
        "created": 1764150000,
    }
    return {**answer, **changes}


def refund_answer(**changes) -> dict:
    return {"id": "rf_1", "charge": "ch_1", "amount": 500, "status": "succeeded", "reference": "re_1", **changes}


def charge(url: str, **options):
    return client(url, **options).charge("pay_1", 1000, "USD", CARD, idempotency_key="k")


def refund(url: str):
    return client(url).refund("ch_1", 500, "re_1", idempotency_key="k")


def authorisation_answer(**changes) -> dict:
    held = {"status": "authorized", "amount_captured": 0, "amount_capturable": 1000, "expires": 1764754800}
    return charge_answer(**{**held, **changes})


def authorise(url: str):
    return client(url).charge("pay_1", 1000, "USD", CARD, idempotency_key="k", capture=False)


def capture(url: str, charge_id: str = "ch_1"):
    return client(url).capture(charge_id, 600, "pay_1", idempotency_key="k")


def void(url: str, charge_id: str = "ch_1"):
    return client(url).void(charge_id, "pay_1", idempotency_key="k")


# --- redirects --------------------------------------------------------------------------------


def test_a_redirect_from_the_sandbox_is_never_followed(sandbox, elsewhere):
    sandbox.faults(redirect_rate=1.0, redirect_to=f"{elsewhere.url}/v1/charges")
    with pytest.raises(GatewayUnavailable, match="redirect"):
        charge(sandbox.url)
    assert elsewhere.requests == []
    assert sandbox.charges() == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_no_redirect_is_followed_or_retried(stub, elsewhere, status):
    stub.answer(status, headers={"Location": f"{elsewhere.url}/v1/charges"})
    with pytest.raises(GatewayUnavailable):
        charge(stub.url)
    assert (len(stub.requests), elsewhere.requests) == (1, [])


# --- what each answer means ----------------------------------------------------------------------


@pytest.mark.parametrize("code, amount_refused", [("amount_too_large", True), ("invalid_request", False)])
def test_a_400_is_a_rejection_with_the_gateways_code(stub, code, amount_refused):
    stub.answer(400, {"error": {"code": code, "message": "No."}})
    with pytest.raises(GatewayRejected) as refused:
        refund(stub.url)
    assert (refused.value.status, refused.value.code, refused.value.message) == (400, code, "No.")
    assert refused.value.amount_refused is amount_refused
    assert len(stub.requests) == 1


@pytest.mark.parametrize("body", [[{"error": "x"}], "not an object", {"error": "not an object"}, {"error": None}, b"{"])
def test_a_400_of_another_shape_is_still_a_rejection_without_a_code(stub, body):
    """The gateway's 400 is final whatever its body: a body that is not the documented shape names no code."""
    stub.answer(400, body)
    with pytest.raises(GatewayRejected) as refused:
        refund(stub.url)
    assert (refused.value.status, refused.value.code, refused.value.amount_refused) == (400, "", False)


def test_a_card_number_in_the_gateways_message_is_withheld(stub):
    stub.answer(400, {"error": {"code": "invalid_number", "message": "Card 4242 4242 4242 4242 is not valid"}})
    with pytest.raises(GatewayRejected) as refused:
        charge(stub.url)
    assert "4242" not in refused.value.message and "4242" not in str(refused.value)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_configuration_failures_are_unavailable_and_not_retried(stub, status):
    stub.answer(status, {"error": {"code": "x", "message": "x"}})
    with pytest.raises(GatewayUnavailable):
        charge(stub.url)
    assert len(stub.requests) == 1


def test_a_wrong_secret_key_is_unavailable_and_charges_nothing(sandbox):
    with pytest.raises(GatewayUnavailable, match="401"):
        charge(sandbox.url, key="sk_wrong")
    assert sandbox.charges() == []


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_server_errors_are_retried_then_unavailable(stub, status):
    stub.answer(status)
    with pytest.raises(GatewayUnavailable):
        charge(stub.url)
    assert len(stub.requests) == ATTEMPTS


def test_a_retry_reuses_the_idempotency_key_and_its_answer_counts(stub):
    stub.answer(429).answer(503).answer(200, charge_answer())
    assert charge(stub.url).id == "ch_1"
    assert stub.requests == [("POST", "/v1/charges", "k")] * 3


def test_each_attempt_is_timed_by_request_and_result_in_the_gateway_latency_metric(stub, capsys, monkeypatch):
    monkeypatch.setenv(NAMESPACE_VARIABLE, "PaymentLedger/test")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    stub.answer(503).answer(200, charge_answer())
    charge(stub.url)
    stub.answers.clear()
    stub.answer(404)
    with pytest.raises(GatewayUnavailable):
        client(stub.url).find_refund("re_1")
    with pytest.raises(GatewayUnavailable):
        charge(f"http://127.0.0.1:{free_port()}")
    timed = [
        (document["request"], document["result"], document[GATEWAY_LATENCY])
        for document in map(json.loads, capsys.readouterr().out.splitlines())
        if GATEWAY_LATENCY in document
    ]
    assert [(request, result) for request, result, _ in timed] == [
        ("POST /v1/charges", "retryable"),
        ("POST /v1/charges", "answered"),
        ("GET /v1/refunds", "refused"),
        *[("POST /v1/charges", "no_answer")] * ATTEMPTS,
    ]
    assert {request for request, _, _ in timed} <= set(REQUESTS) and all(ms[0] >= 0 for _, _, ms in timed)


def test_a_key_still_in_flight_is_retried_then_an_unknown_outcome(stub):
    stub.answer(409, {"error": {"code": "idempotency_in_flight", "message": ""}})
    with pytest.raises(GatewayOutcomeUnknown):
        charge(stub.url)
    assert len(stub.requests) == ATTEMPTS


def test_a_key_used_with_another_body_is_an_unknown_outcome_not_a_rejection(stub):
    stub.answer(422, {"error": {"code": "idempotency_mismatch", "message": ""}})
    with pytest.raises(GatewayOutcomeUnknown, match="422"):
        charge(stub.url)
    assert len(stub.requests) == 1


def test_nothing_listening_is_unavailable_not_unknown():
    with pytest.raises(GatewayUnavailable):
        charge(f"http://127.0.0.1:{free_port()}")


def test_an_answer_that_does_not_come_in_time_is_an_unknown_outcome(sandbox):
    sandbox.faults(latency_ms=600)
    with pytest.raises(GatewayOutcomeUnknown):
        client(sandbox.url, read_timeout=0.2).find_charge("pay_x")


# --- every answer is checked before it is believed ---------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        [charge_answer()],
        charge_answer(id=None),
        charge_answer(status="pending"),
        charge_answer(status=None),
        charge_answer(amount="1000"),
        charge_answer(amount=True),
        charge_answer(amount=999),
        charge_answer(currency="EUR"),
        charge_answer(reference="pay_2"),
        charge_answer(amount_refunded=1001),
        charge_answer(decline_code=7),
        {k: v for k, v in charge_answer().items() if k != "amount_refunded"},
    ],
)
def test_a_charge_answer_that_does_not_match_the_request_is_invalid_never_a_decline(stub, body):
    stub.answer(200, body)
    with pytest.raises(GatewayInvalidAnswer):
        charge(stub.url)
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        refund_answer(charge="ch_2"),
        refund_answer(amount=501),
        refund_answer(reference="re_2"),
        refund_answer(status="failed"),
        refund_answer(id=5),
        {"error": "nothing"},
    ],
)
def test_a_refund_answer_that_does_not_match_the_request_is_invalid(stub, body):
    stub.answer(200, body)
    with pytest.raises(GatewayInvalidAnswer):
        refund(stub.url)


@pytest.mark.parametrize(
    "lookup, body",
    [
        ("find_charge", {"data": [charge_answer(reference="pay_2")]}),
        ("find_refund", {"data": [refund_answer(reference="re_2")]}),
        ("find_charge", {"data": {"id": "ch_1"}}),
        ("find_refund", {}),
    ],
)
def test_a_lookup_answer_for_another_reference_or_without_results_is_invalid(stub, lookup, body):
    stub.answer(200, body)
    with pytest.raises(GatewayInvalidAnswer):
        getattr(client(stub.url), lookup)("pay_1" if lookup == "find_charge" else "re_1")


def test_a_refund_found_by_reference_must_be_of_a_positive_amount(stub):
    stub.answer(200, {"data": [refund_answer(amount=0)]}).answer(200, {"data": [refund_answer(amount=1)]})
    gateway = client(stub.url)
    with pytest.raises(GatewayInvalidAnswer):
        gateway.find_refund("re_1")
    assert gateway.find_refund("re_1").amount == 1


@pytest.mark.parametrize("refunded", [0, 400, 1000])
def test_a_charge_found_by_reference_may_be_refunded_up_to_its_whole_amount(stub, refunded):
    stub.answer(200, {"data": [charge_answer(amount_refunded=refunded)]})
    found = client(stub.url).find_charge("pay_1")
    assert (found.id, found.amount, found.status) == ("ch_1", 1000, "succeeded")


def test_a_lookup_prefers_the_charge_that_moved_money(stub):
    stub.answer(
        200, {"data": [charge_answer(id="ch_0", status="declined", decline_code="generic_decline"), charge_answer()]}
    )
    assert client(stub.url).find_charge("pay_1").id == "ch_1"


def test_a_garbled_answer_from_the_sandbox_is_invalid_and_the_charge_exists(sandbox):
    sandbox.faults(garbage_rate=1.0)
    with pytest.raises(GatewayInvalidAnswer):
        charge(sandbox.url)
    assert len(sandbox.charges()) == 1


# --- authorise, then capture or void ----------------------------------------------------------------


def test_only_an_authorisation_asks_the_gateway_not_to_capture(stub):
    stub.answer(200, charge_answer()).answer(200, authorisation_answer())
    charge(stub.url)
    authorised = authorise(stub.url)
    assert [("capture" in body, body.get("capture")) for body in stub.bodies] == [(False, None), (True, False)]
    assert (authorised.status, authorised.amount_captured, authorised.amount_capturable) == ("authorized", 0, 1000)
    assert authorised.expires == 1764754800


def test_a_capture_and_a_void_are_posted_to_the_charges_actions_with_the_key(stub):
    stub.answer(200, charge_answer(amount_captured=600, amount_capturable=0)).answer(
        200, charge_answer(status="voided", amount_captured=0, amount_capturable=0)
    )
    assert capture(stub.url).amount_captured == 600
    assert void(stub.url).status == "voided"
    assert stub.requests == [("POST", "/v1/charges/ch_1/capture", "k"), ("POST", "/v1/charges/ch_1/void", "k")]
    assert stub.bodies == [{"amount": 600}, {}]


@pytest.mark.parametrize(
    "body",
    [
        charge_answer(),  # succeeded: an authorisation must not be captured
        authorisation_answer(amount=999, amount_capturable=999),
        authorisation_answer(currency="EUR"),
        authorisation_answer(reference="pay_2"),
        authorisation_answer(status="voided"),
    ],
)
def test_an_authorisation_answered_otherwise_than_authorised_or_declined_as_asked_is_invalid(stub, body):
    stub.answer(200, body)
    with pytest.raises(GatewayInvalidAnswer):
        authorise(stub.url)


@pytest.mark.parametrize("status", ["authorized", "expired", "voided"])
def test_a_charge_answered_as_anything_but_succeeded_or_declined_is_invalid(stub, status):
    stub.answer(200, charge_answer(status=status, amount_captured=0))
    with pytest.raises(GatewayInvalidAnswer):
        charge(stub.url)


@pytest.mark.parametrize(
    "body",
    [
        charge_answer(amount_captured=500, amount_capturable=0),
        charge_answer(amount_captured=1000, amount_capturable=0),
        charge_answer(),  # no amount_captured: all of a succeeded charge, not the 600 asked
        charge_answer(status="authorized", amount_captured=0, amount_capturable=1000),
        charge_answer(status="voided", amount_captured=600),
        charge_answer(id="ch_2", amount_captured=600),
        charge_answer(reference="pay_2", amount_captured=600),
        charge_answer(amount_captured="600"),
    ],
)
def test_a_capture_answered_with_another_amount_status_or_charge_is_invalid(stub, body):
    stub.answer(200, body)
    with pytest.raises(GatewayInvalidAnswer):
        capture(stub.url)
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        authorisation_answer(),
        charge_answer(amount_captured=1000),
        charge_answer(status="expired", amount_captured=0),
        charge_answer(status="voided", id="ch_2", amount_captured=0),
        charge_answer(status="voided", reference="pay_2", amount_captured=0),
    ],
)
def test_a_void_answered_with_another_status_or_charge_is_invalid(stub, body):
    stub.answer(200, body)
    with pytest.raises(GatewayInvalidAnswer):
        void(stub.url)


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_captured": 1001},
        {"amount_captured": -1},
        {"amount_captured": True},
        {"amount_captured": None},
        {"amount_capturable": 1001},
        {"amount_capturable": -1},
        {"amount_capturable": "0"},
        {"amount_captured": 500, "amount_refunded": 501},
        {"expires": "tomorrow"},
        {"expires": True},
        {"expires": 1764754800.5},
    ],
)
def test_a_charge_with_amounts_or_expiry_out_of_range_or_of_the_wrong_type_is_invalid(stub, changes):
    stub.answer(200, {"data": [charge_answer(**changes)]})
    with pytest.raises(GatewayInvalidAnswer):
        client(stub.url).find_charge("pay_1")


@pytest.mark.parametrize(
    "status, captured",
    [("succeeded", 1000), ("declined", 0), ("authorized", 0), ("voided", 0), ("expired", 0)],
)
def test_a_charge_without_the_capture_fields_is_captured_in_full_only_when_succeeded(stub, status, captured):
    stub.answer(200, {"data": [charge_answer(status=status)]})
    found = client(stub.url).find_charge("pay_1")
    assert (found.amount_captured, found.amount_capturable, found.expires) == (captured, 0, None)


@pytest.mark.parametrize(
    "charge_id",
    ["../refunds", "ch_1/../../v1/refunds", "ch_1/void", "ch_1?x=1", "ch_1#", "ch_%2e%2e", "ch_1\n", "ch_", "", "re_1"],
)
def test_a_charge_id_that_could_steer_the_path_is_refused_as_invalid_and_nothing_is_sent(stub, charge_id):
    stub.answer(200, charge_answer(id=charge_id, amount_captured=600))
    for change in (capture, void):
        with pytest.raises(GatewayInvalidAnswer):
            change(stub.url, charge_id)
    assert stub.requests == []


@pytest.mark.parametrize("code", ["charge_expired", "charge_not_capturable", "amount_too_large"])
def test_a_refused_capture_is_a_rejection_with_the_gateways_code(stub, code):
    stub.answer(400, {"error": {"code": code, "message": "No."}})
    with pytest.raises(GatewayRejected) as refused:
        capture(stub.url)
    assert (refused.value.code, refused.value.amount_refused) == (code, code == "amount_too_large")
    assert len(stub.requests) == 1


def test_capture_and_void_attempts_are_timed_by_the_path_template_never_the_charge_id(stub, capsys, monkeypatch):
    monkeypatch.setenv(NAMESPACE_VARIABLE, "PaymentLedger/test")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    stub.answer(503).answer(200, charge_answer(id="ch_9f8e7d", amount_captured=600))
    capture(stub.url, "ch_9f8e7d")
    stub.answers.clear()
    stub.answer(400, {"error": {"code": "charge_not_voidable", "message": ""}})
    with pytest.raises(GatewayRejected):
        void(stub.url, "ch_9f8e7d")
    printed = capsys.readouterr().out
    timed = [(d["request"], d["result"]) for d in map(json.loads, printed.splitlines()) if GATEWAY_LATENCY in d]
    assert timed == [
        ("POST /v1/charges/{id}/capture", "retryable"),
        ("POST /v1/charges/{id}/capture", "answered"),
        ("POST /v1/charges/{id}/void", "refused"),
    ]
    assert {request for request, _ in timed} <= set(REQUESTS) and "ch_9f8e7d" not in printed


def test_a_lookup_prefers_a_captured_charge_then_an_authorised_one(stub):
    declined = charge_answer(id="ch_0", status="declined", decline_code="generic_decline", amount_captured=0)
    voided = charge_answer(id="ch_2", status="voided", amount_captured=0)
    held = authorisation_answer(id="ch_3")
    stub.answer(200, {"data": [declined, voided, held]}).answer(200, {"data": [held, declined, charge_answer()]})
    gateway = client(stub.url)
    assert gateway.find_charge("pay_1").id == "ch_3"
    assert gateway.find_charge("pay_1").id == "ch_1"


# --- the time budget ------------------------------------------------------------------------------


def test_a_slow_gateway_is_given_up_on_within_the_deadline(sandbox):
    sandbox.faults(latency_ms=2000)
    started = time.monotonic()
    with pytest.raises(GatewayOutcomeUnknown):
        within(1.5, lambda: charge(sandbox.url, read_timeout=1.0))
    assert time.monotonic() - started < 1.5 + 0.15


def test_no_attempt_starts_when_too_little_time_is_left(stub):
    stub.answer(200, charge_answer())
    with pytest.raises(GatewayUnavailable):
        within(MIN_ATTEMPT_SECONDS / 2, lambda: charge(stub.url))
    assert stub.requests == []


def test_no_backoff_is_slept_past_the_deadline(stub):
    stub.answer(503)
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable):
        within(0.8, lambda: charge(stub.url, backoff=1.0))
    assert (len(stub.requests), time.monotonic() - started < 0.3) == (1, True)


def test_without_a_deadline_the_configured_timeouts_and_attempts_apply(stub):
    stub.answer(503)
    with pytest.raises(GatewayUnavailable):
        charge(stub.url, backoff=0.01)
    assert len(stub.requests) == ATTEMPTS


# --- the sandbox itself ------------------------------------------------------------------------------


def test_the_sandbox_lists_and_finds_refunds_and_charges_report_what_was_refunded(sandbox):
    gateway = client(sandbox.url)
    made = gateway.charge("pay_r", 1000, "USD", CARD, idempotency_key="pay_r")
    refund = gateway.refund(made.id, 400, "re_r", idempotency_key="re_r")
    auth = {"Authorization": f"Bearer {DEFAULT_SECRET_KEY}"}
    by_id = requests.get(f"{sandbox.url}/v1/refunds/{refund.id}", headers=auth, timeout=5).json()
    assert (by_id["reference"], by_id["charge"], by_id["amount"]) == ("re_r", made.id, 400)
    charge_by_id = requests.get(f"{sandbox.url}/v1/charges/{made.id}", headers=auth, timeout=5).json()
    assert charge_by_id["amount_refunded"] == 400
    assert [r["id"] for r in sandbox.refunds()] == [refund.id]
    assert sandbox.charges()[0]["amount_refunded"] == 400 and "last4" not in sandbox.charges()[0]


def test_a_sandbox_reset_restores_the_faults_it_started_with(sandbox):
    sandbox.faults(drop_rate=1.0, garbage_rate=0.5)
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
    faults = requests.get(f"{sandbox.url}/_sandbox/faults", timeout=5).json()
    assert (faults["drop_rate"], faults["garbage_rate"]) == (0, 0)


def test_a_request_delayed_across_a_sandbox_reset_is_dropped_unprocessed(sandbox):
    """A test's leftover request must not charge in the next test's sandbox."""
    sandbox.faults(latency_ms=1000)
    client = SparkleClient(sandbox.url, lambda: DEFAULT_SECRET_KEY, read_timeout=5, retry=RetryPolicy(attempts=1))
    with ThreadPoolExecutor(1) as pool:
        charging = pool.submit(client.charge, "pay_late", 100, "USD", CARD, idempotency_key="pay_late")
        time.sleep(0.3)  # the request is in the sandbox, waiting out its latency
        requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
        with pytest.raises(GatewayOutcomeUnknown):
            charging.result()
    assert sandbox.charges() == []


def test_a_secret_key_that_cannot_be_read_is_an_unavailable_gateway_and_nothing_is_sent(sandbox):
    def unreadable() -> str:
        raise TimeoutError("Secrets Manager did not answer")

    with pytest.raises(GatewayUnavailable):
        SparkleClient(sandbox.url, unreadable).charge("pay_s", 100, "USD", CARD, idempotency_key="pay_s")
    assert sandbox.charges() == []


@pytest.mark.parametrize("charge_id", ["ch_1-2", "ch_1/../../refunds", "ch_", "ch_1 2", "1"])
def test_an_authorisation_whose_charge_id_could_never_be_captured_is_an_invalid_answer(stub, charge_id):
    """Refused where it arrives: a charge booked under it could never be captured, voided or refunded."""
    stub.answer(200, authorisation_answer(id=charge_id))
    with pytest.raises(GatewayInvalidAnswer):
        authorise(stub.url)


# --- settlements ------------------------------------------------------------------------------


def settlement_answer(**changes) -> dict:
    answer = {
        "id": "st_1",
        "currency": "USD",
        "created": 1764150000,
        "gross": 1500,
        "fees": 74,
        "net": 1426,
        "lines": 1,
    }
    return {**answer, **changes}


def line_answer(**changes) -> dict:
    line = {"id": "sl_1", "type": "charge", "charge": "ch_1", "refund": None, "reference": "pay_1", "amount": 1500}
    return {**line, "fee": 74, "currency": "USD", **changes}


def test_settlements_are_asked_for_after_a_time_and_read_as_answered(stub):
    stub.answer(200, {"data": [settlement_answer(), settlement_answer(id="st_2", gross=-300, fees=0, net=-300)]})
    found = client(stub.url).settlements(1764000000)
    assert [(s.id, s.currency, s.created, s.gross, s.fees, s.net, s.lines) for s in found] == [
        ("st_1", "USD", 1764150000, 1500, 74, 1426, 1),
        ("st_2", "USD", 1764150000, -300, 0, -300, 1),
    ]
    assert stub.requests == [("GET", "/v1/settlements?created_after=1764000000", None)]


def test_a_settlement_id_of_the_longest_shape_is_read(stub):
    longest = "st_" + "aZ9" * 21 + "x"  # 64 characters after st_: as long as GET /settlements/{id} reads
    stub.answer(200, {"data": [settlement_answer(id=longest)]})
    assert [s.id for s in client(stub.url).settlements(0)] == [longest]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"data": {}},
        {"data": [settlement_answer(id="ch_1")]},
        {"data": [settlement_answer(id="st_" + "a" * 65)]},
        {"data": [settlement_answer(id="st_1/../x")]},
        {"data": [settlement_answer(net=1427)]},
        {"data": [settlement_answer(gross="1500")]},
        {"data": [settlement_answer(fees=74.0)]},
        {"data": [settlement_answer(net=True)]},
        {"data": [settlement_answer(lines=-1)]},
        {"data": [settlement_answer(currency=None)]},
        {"data": [settlement_answer(created="today")]},
        {"data": [{k: v for k, v in settlement_answer().items() if k != "fees"}]},
    ],
)
def test_a_settlement_list_that_is_not_one_or_does_not_add_up_is_invalid(stub, body):
    stub.answer(200, body)
    with pytest.raises(GatewayInvalidAnswer):
        client(stub.url).settlements(0)


def test_lines_are_asked_for_by_page_and_read_as_answered(stub):
    refund = line_answer(id="sl_2", type="refund", refund="rf_1", reference="re_1", amount=-500, fee=0)
    unknown = line_answer(id="sl_3", type="adjustment", charge=None, reference=None, amount=-20, fee=0)
    stub.answer(200, {"data": [line_answer(), refund, unknown], "has_more": True})
    lines, has_more = client(stub.url).settlement_lines("st_9", starting_after="sl_0", limit=3)
    assert has_more and [
        (ln.id, ln.type, ln.charge_id, ln.refund_id, ln.reference, ln.amount, ln.fee) for ln in lines
    ] == [
        ("sl_1", "charge", "ch_1", None, "pay_1", 1500, 74),
        ("sl_2", "refund", "ch_1", "rf_1", "re_1", -500, 0),
        ("sl_3", "adjustment", None, None, None, -20, 0),
    ]
    assert stub.requests == [("GET", "/v1/settlements/st_9/lines?limit=3&starting_after=sl_0", None)]


@pytest.mark.parametrize(
    "body",
    [
        {"data": [line_answer()]},
        {"data": [line_answer()], "has_more": "no"},
        {"data": None, "has_more": False},
        {"data": [], "has_more": True},
        {"data": [line_answer(id="ch_1")], "has_more": False},
        {"data": [line_answer(id="sl_")], "has_more": False},
        {"data": [line_answer(type="payout")], "has_more": False},
        {"data": [line_answer(amount=15.0)], "has_more": False},
        {"data": [line_answer(amount=None)], "has_more": False},
        {"data": [line_answer(fee="74")], "has_more": False},
        {"data": [line_answer(charge=1)], "has_more": False},
        {"data": [line_answer(reference=["pay_1"])], "has_more": False},
        {"data": [line_answer(currency=None)], "has_more": False},
        {"data": [line_answer(id=f"sl_{n}") for n in range(3)], "has_more": False},
    ],
)
def test_a_page_of_lines_that_is_not_one_is_invalid(stub, body):
    stub.answer(200, body)
    with pytest.raises(GatewayInvalidAnswer):
        client(stub.url).settlement_lines("st_1", limit=2)


@pytest.mark.parametrize(
    "settlement_id", ["../charges", "st_1/../../v1/refunds", "st_1?x=1", "st_1#", "st_1\n", "st_", "", "st_" + "a" * 65]
)
def test_a_settlement_id_that_could_steer_the_path_is_refused_as_invalid_and_nothing_is_sent(stub, settlement_id):
    stub.answer(200, {"data": [], "has_more": False})
    with pytest.raises(GatewayInvalidAnswer):
        client(stub.url).settlement_lines(settlement_id)
    with pytest.raises(GatewayInvalidAnswer):
        client(stub.url).settlement_lines("st_1", starting_after=f"sl_{settlement_id}")
    assert stub.requests == []


@pytest.mark.parametrize("limit", [0, 101])
def test_a_page_size_out_of_range_is_not_asked_for(stub, limit):
    with pytest.raises(ValueError):
        client(stub.url).settlement_lines("st_1", limit=limit)
    assert stub.requests == []


def test_settlement_requests_are_timed_by_the_path_template_never_the_settlement_id(stub, capsys, monkeypatch):
    monkeypatch.setenv(NAMESPACE_VARIABLE, "PaymentLedger/test")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    stub.answer(503).answer(200, {"data": [], "has_more": False})
    client(stub.url).settlement_lines("st_9f8e7d")
    stub.answers.clear()
    stub.answer(200, {"data": []})
    client(stub.url).settlements(0)
    printed = capsys.readouterr().out
    timed = [(d["request"], d["result"]) for d in map(json.loads, printed.splitlines()) if GATEWAY_LATENCY in d]
    assert timed == [
        ("GET /v1/settlements/{id}/lines", "retryable"),
        ("GET /v1/settlements/{id}/lines", "answered"),
        ("GET /v1/settlements", "answered"),
    ]
    assert {request for request, _ in timed} <= {
        f"GET {SETTLEMENTS}",
        f"GET {SETTLEMENT_LINES}",
    } and "st_9f8e7d" not in printed


def test_the_sandbox_settles_over_http_and_answers_204_when_nothing_is_unsettled(sandbox):
    gateway = client(sandbox.url)
    charge = gateway.charge("pay_settle", 1500, "USD", CARD, idempotency_key="k")
    settle = f"{sandbox.url}/_sandbox/settle"
    made = requests.post(settle, json={"adjust": {"pay_settle": 1}, "unknown": 1}, timeout=5)
    assert made.status_code == 200
    (listed,) = gateway.settlements(0)
    assert (made.json()["id"], made.json()["lines"]) == (listed.id, 2)
    lines, _ = gateway.settlement_lines(made.json()["id"])
    assert {(line.charge_id == charge.id, line.amount) for line in lines} == {(True, 1501), (False, 1000)}
    assert requests.post(settle, json={}, timeout=5).status_code == 204
    assert requests.post(settle, json={"unknown": -1}, timeout=5).status_code == 400
    assert requests.get(f"{sandbox.url}/v1/settlements", timeout=5).status_code == 401
