"""The HTTP edge on bad input: bodies that are not plain JSON objects get a 400
(never a 500) and write nothing, errors never echo a card number, the caller is
the role behind an assumed-role session, and each request gets its deadline.

The handlers are the real ones (AWS in moto, the sandbox as a process) except
where a stub route shows the edge's own defence, whatever a route raises."""

import base64
import json
import math
import socket
import threading

import pytest
import requests
from botocore.credentials import Credentials

from client import SigV4
from lambdas import deadline
from lambdas.domain.errors import GatewayFailed, InvalidRequest, NotFound
from lambdas.domain.merchants import Merchant
from lambdas.domain.rules import RuleSet
from lambdas.edge import (
    _STRING_OR_BRACKET,
    MAX_NESTING,
    ApiHandler,
    HttpError,
    field_param,
    parse_json_object,
)
from lambdas.routes import ROUTES, Function
from lambdas.service import Answer, Tenancy
from tests.support.api import VISA, assert_error, card, pay, stored_items
from tests.support.events import body_of, invoke
from tests.support.fakes import FakeMerchantDirectory, fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.leaks import card_data_in
from tools import api_events, local_api
from tools.api_events import LambdaContext, api_event
from tools.sigv4 import IssuedCredential

PAN = "4242424242424242"


def nested(levels: int) -> str:
    """A payment body nested ``levels`` deep: the body, then arrays in its metadata."""
    inner = "[" * (levels - 1) + '"x"' + "]" * (levels - 1)
    return f'{{"amount": 100, "currency": "usd", "source": {{"token": "tok_x"}}, "metadata": {inner}}}'


# --- the parser -------------------------------------------------------------------


def refusal(data: bytes) -> HttpError:
    with pytest.raises(HttpError) as refused:
        parse_json_object(data)
    assert (refused.value.status, refused.value.error_type) == (400, "invalid_request_error")
    return refused.value


@pytest.mark.parametrize(
    "data",
    [
        b'{"amount": 100, "amount": 5}',
        b'{"source": {"token": "a", "token": "b"}}',
        b'{"a": [{"x": 1, "y": 2, "x": 3}]}',
    ],
)
def test_a_duplicated_member_anywhere_is_refused(data):
    assert refusal(data).code == "duplicate_member"


def test_nesting_is_allowed_to_32_levels_and_refused_beyond():
    assert MAX_NESTING == 32
    assert parse_json_object(nested(32).encode())["amount"] == 100
    assert refusal(nested(33).encode()).code == "nesting_too_deep"


def test_nesting_is_counted_back_down_as_objects_and_arrays_close():
    closed_then_deep = '{"a": {"b": {"c": []}, "d": ' + "[" * 31 + "]" * 31 + "}}"  # 33 deep inside "d"
    assert refusal(closed_then_deep.encode()).code == "nesting_too_deep"
    siblings = "{" + ", ".join(f'"m{n}": ' + "[" * 31 + "]" * 31 for n in range(3)) + "}"  # 32 deep, three times
    assert set(parse_json_object(siblings.encode())) == {"m0", "m1", "m2"}


def test_very_deep_nesting_is_refused_without_recursion():
    assert refusal(b"[" * 100_000).code == "nesting_too_deep"
    assert refusal(b'{"a": ' * 50_000 + b"1" + b"}" * 50_000).code == "nesting_too_deep"


def test_brackets_inside_strings_are_text_not_nesting():
    text = json.dumps({"description": "[{" * 40 + '\\"]}' * 3})
    assert parse_json_object(text.encode())["description"].startswith("[{[{")


@pytest.mark.parametrize(
    "text", ['"' + '\\"' * 1000, '{"a": "' + '\\"[' * 1000 + "\\", '{"a": "x\\\n[[[', '{"a": "[[[' + "]" * 40]
)
def test_a_string_left_open_is_one_scan_to_the_end_and_the_body_a_400(text):
    """One match per string, however many quotes and escapes follow: the nesting scan stays linear (a string that
    had to close was tried again from each escaped quote: 3 s of CPU for 32 KiB of them)."""
    *_, last = _STRING_OR_BRACKET.finditer(text)
    assert last.group(0).startswith('"') and last.end() == len(text)
    assert refusal(text.encode()).code == "invalid_json"


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'{"amount": NaN}', b'{"a": "\xff"}'])
def test_what_is_not_a_json_object_in_utf8_is_refused(data):
    assert refusal(data).code == "invalid_json"


# --- param: named by position when the name is a card number --------------------


def test_a_member_whose_name_is_a_card_number_is_named_by_its_position():
    body = {"amount": 1, "metadata": {"order": "A", "4242 4242 4242 4242": "v"}, PAN: 1}
    assert field_param(("metadata", "4242 4242 4242 4242"), body) == "metadata[1]"
    assert field_param(("metadata", "4242 4242 4242 4242", "[key]"), body) == "metadata[1][key]"
    assert field_param((PAN,), body) == "[2]"
    assert field_param(("metadata", "order"), body) == "metadata.order"
    assert field_param(("source", "card", "exp_month"), body) == "source.card.exp_month"  # absent members by name


# --- bad bodies through the real handlers: 400, nothing written --------------------


def assert_refused_and_nothing_written(response, env, sandbox, code: str) -> None:
    assert assert_error(response, 400, "invalid_request_error")["code"] == code
    assert stored_items(env) == 0 and sandbox.charges() == []


def test_a_duplicated_amount_is_refused_not_charged(aws_env, sandbox):
    raw = f'{{"amount": 100, "amount": 5, "currency": "usd", "source": {{"card": {json.dumps(card())}}}}}'
    response = invoke("POST", "/payments", raw_body=raw, headers={"Idempotency-Key": "dup"})
    assert_refused_and_nothing_written(response, aws_env, sandbox, "duplicate_member")


@pytest.mark.parametrize("levels", [33, 10_000])
def test_a_body_nested_too_deep_is_a_400(aws_env, sandbox, levels):
    response = invoke("POST", "/payments", raw_body=nested(levels), headers={"Idempotency-Key": "deep"})
    assert_refused_and_nothing_written(response, aws_env, sandbox, "nesting_too_deep")


def invoke_event(event: dict) -> dict:
    response = api_events.invoke(event)
    assert card_data_in(response["body"]) == [], "card data in a response body"
    return response


def test_invalid_base64_is_a_400_and_valid_base64_is_read(aws_env, sandbox):
    event = api_event("POST", "/tokens", raw_body="not base64!")
    event["isBase64Encoded"] = True
    assert_refused_and_nothing_written(invoke_event(event), aws_env, sandbox, "invalid_body")
    valid = base64.b64encode(json.dumps({"card": VISA}).encode()).decode()
    event["body"] = valid[:8] + "!\n" + valid[8:]  # read alike by a lenient decoder, which drops what is not base64
    assert_refused_and_nothing_written(invoke_event(event), aws_env, sandbox, "invalid_body")
    event["body"] = base64.b64encode(json.dumps({"card": VISA}).encode()).decode()
    assert invoke_event(event)["statusCode"] == 201


def test_a_body_that_is_not_utf8_is_a_400_with_a_message(aws_env, sandbox):
    event = api_event("POST", "/tokens")
    event["body"] = base64.b64encode(b'{"card": "\xff"}').decode()
    event["isBase64Encoded"] = True
    assert_refused_and_nothing_written(invoke_event(event), aws_env, sandbox, "invalid_json")


def test_an_unknown_member_with_an_empty_name_is_a_400(aws_env):
    error = assert_error(invoke("POST", "/tokens", {"card": VISA, "": 1}), 400, "invalid_request_error")
    assert error["code"] == "parameter_invalid"
    assert stored_items(aws_env) == 0


def test_payments_are_listed_with_no_query_string_at_all(aws_env, sandbox):
    """API Gateway sends ``queryStringParameters: null`` when a request has no query string."""
    body = {"amount": 100, "currency": "usd", "source": {"card": card()}}
    paid = body_of(pay(body, key="listed"))
    event = api_event("GET", "/payments")
    assert event["queryStringParameters"] is None
    listed = invoke_event(event)
    assert listed["statusCode"] == 200, listed["body"]
    assert [p["id"] for p in body_of(listed)["data"]] == [paid["id"]]


@pytest.mark.parametrize("key", ["key\x7f", "key\x1f", "kéy", ""])
def test_an_idempotency_key_outside_printable_ascii_is_refused(aws_env, key):
    body = {"amount": 100, "currency": "usd", "source": {"token": "tok_x"}}
    assert_error(pay(body, key=key), 400, "invalid_request_error", "Idempotency-Key")
    assert stored_items(aws_env) == 0


@pytest.mark.parametrize("currency", ["ınr", "uſd"])
def test_a_currency_outside_ascii_is_refused(aws_env, sandbox, currency):
    response = pay({"amount": 100, "currency": currency, "source": {"card": card()}})
    assert_error(response, 400, "invalid_request_error", "currency")
    assert stored_items(aws_env) == 0 and sandbox.charges() == []


# --- errors never echo a card number (each response is scanned by tests.support.events.invoke) ---


@pytest.mark.parametrize("path", [f"/payments/{PAN}", "/payments/4242-4242-4242-4242/ledger"])
def test_a_path_id_that_is_a_card_number_is_not_echoed(aws_env, path):
    assert_error(invoke("GET", path), 404, "invalid_request_error")


def test_an_unknown_member_named_by_a_card_number_is_named_by_position(aws_env):
    error = assert_error(invoke("POST", "/tokens", {"card": VISA, PAN: 1}), 400, "invalid_request_error")
    assert error["param"] == "[1]" and error["message"].startswith("[1]: ")
    error = assert_error(
        invoke("POST", "/tokens", {"card": {**VISA, "4242 4242 4242 4242": 1}}), 400, "invalid_request_error"
    )
    assert error["param"] == "card[3]"


def test_a_metadata_key_holding_a_card_number_is_named_by_position(aws_env, sandbox):
    """Whether or not its value is also refused (over 500 characters)."""
    for n, value in enumerate(["v" * 501, "v"]):
        metadata = {"order": "A", PAN: value}
        body = {"amount": 100, "currency": "usd", "source": {"card": card()}, "metadata": metadata}
        assert_error(pay(body, key=f"meta-{n}"), 400, "invalid_request_error", "metadata[1]")
    assert stored_items(aws_env) == 0 and sandbox.charges() == []


def stub_handler(route):
    """The read function's handler with ``route`` serving both its routes, and no service."""
    tenancy = fake_world(FakeGateway()).tenancy
    served = [f"{r.method} {r.path}" for r in ROUTES if r.function is Function.READ]
    return ApiHandler(Function.READ, dict.fromkeys(served, route), lambda: tenancy)


@pytest.mark.parametrize(
    "raised",
    [
        NotFound(f"No such payment: {PAN}"),
        InvalidRequest("Bad 3782 822463 10005.", "metadata.4242.4242.4242.4242", "x"),
        HttpError(400, "invalid_request_error", "x", "card 5555/5555/5555/4444 refused", f"card.{PAN}"),
    ],
)
def test_the_edge_masks_a_card_number_in_any_error_whatever_raised_it(raised):
    def route(request, service) -> Answer:
        raise raised

    response = stub_handler(route)(api_event("GET", "/payments/pay_1"), None)
    error = body_of(response)["error"]
    assert card_data_in(response["body"]) == [] and "[masked]" in error["message"]
    assert "[masked]" in error.get("param", "[masked]")


@pytest.mark.parametrize("timed_out, status, code", [(True, 504, "gateway_timeout"), (False, 502, "gateway_failed")])
def test_a_gateway_failure_names_the_payment_and_the_refund_left_pending(timed_out, status, code):
    def route(request, service) -> Answer:
        raise GatewayFailed("pay_1", timed_out=timed_out, refund_id="re_1")

    error = assert_error(stub_handler(route)(api_event("GET", "/payments/pay_1"), None), status, "gateway_error")
    assert (error["code"], error["payment_id"], error["refund_id"]) == (code, "pay_1", "re_1")


def test_answers_and_errors_alike_are_sent_as_json():
    answers = iter([Answer(200, {"id": "pay_1"}), NotFound("No such payment.")])

    def route(request, service) -> Answer:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    handler = stub_handler(route)
    for _ in range(2):
        response = handler(api_event("GET", "/payments/pay_1"), None)
        assert response["headers"]["Content-Type"] == "application/json"
        body_of(response)


def test_a_caller_acts_for_the_merchant_its_whole_account_is_configured_for():
    world = fake_world(FakeGateway())
    directory = FakeMerchantDirectory({"210987654321": Merchant("whole-account", RuleSet())})
    served = [f"{r.method} {r.path}" for r in ROUTES if r.function is Function.READ]

    def route(request, service) -> Answer:
        return Answer(200, {"merchant": request.merchant})

    handler = ApiHandler(
        Function.READ, dict.fromkeys(served, route), lambda: Tenancy(directory, world.tenancy.dependencies)
    )
    session = "arn:aws:sts::210987654321:assumed-role/ops/alice"
    response = handler(api_event("GET", "/payments/pay_1", caller=session), None)
    assert (response["statusCode"], body_of(response)) == (200, {"merchant": "whole-account"})
    other_account = "arn:aws:sts::123456789099:assumed-role/ops/alice"
    assert_error(handler(api_event("GET", "/payments/pay_1", caller=other_account), None), 403, "permission_error")


def test_an_unexpected_error_is_a_500_logged_with_its_route_and_request(captured_logs):
    def route(request, service) -> Answer:
        raise RuntimeError("a bug")

    response = stub_handler(route)(api_event("GET", "/payments/pay_1", request_id="req-unexpected"), None)
    assert_error(response, 500, "api_error")
    [logged] = captured_logs.errors()
    assert (logged["message"], logged["route"], logged["request_id"]) == (
        "unexpected error",
        "GET /payments/{id}",
        "req-unexpected",
    )


# --- the deadline ---------------------------------------------------------------------


def test_each_request_gets_the_deadline_its_context_leaves():
    seen = []

    def route(request, service) -> Answer:
        seen.append(deadline.remaining())
        return Answer(200, {})

    handler = stub_handler(route)
    handler(api_event("GET", "/payments/pay_1"), LambdaContext(timeout_seconds=3.0))
    handler(api_event("GET", "/payments/pay_1"), None)  # no context (a test): no deadline left over
    assert 0.9 < seen[0] <= 3.0 - deadline.WRITE_RESERVE_SECONDS and seen[1] == math.inf


def test_a_write_may_wait_for_its_turn_only_while_giving_up_still_fits_before_the_timeout():
    now = [100.0]
    clock = lambda: now[0]  # noqa: E731
    deadline.start(5.0, clock)  # the function times out at 105
    assert deadline.may_wait(4.0, clock) and not deadline.may_wait(4.01, clock)
    now[0] = 103.5  # past the gateway calls' deadline (103): writes may still use the reserve, not its last second
    assert deadline.remaining(clock) == -0.5
    assert deadline.may_wait(0.5, clock) and not deadline.may_wait(0.51, clock)


def test_the_local_context_counts_down_from_the_timeout():
    now = [100.0]
    context = LambdaContext(timeout_seconds=29, clock=lambda: now[0])
    now[0] += 4.5
    assert context.get_remaining_time_in_millis() == 24_500
    now[0] += 60
    assert context.get_remaining_time_in_millis() == 0


LOCAL_KEY = IssuedCredential(
    "AKIALOCALTEST000001", "local-secret", "arn:aws:iam::123456789012:user/acme", "123456789012"
)


def test_the_local_api_gives_each_signed_invocation_its_signer_and_the_function_timeout(monkeypatch):
    seen = []

    def handler(event, context):
        seen.append((context.get_remaining_time_in_millis(), event["requestContext"]["identity"]))
        return {"statusCode": 200, "headers": {}, "body": "{}"}

    monkeypatch.setattr(local_api, "handler_for", lambda route: handler)
    api = local_api.LocalApi(0, None, 7, {LOCAL_KEY.access_key_id: LOCAL_KEY}, "us-east-1")
    threading.Thread(target=api.serve_forever, daemon=True).start()
    url = f"http://{local_api.HOST}:{api.server_port}/payments/pay_1"
    try:
        signed = requests.get(
            url, timeout=5, auth=SigV4(Credentials("AKIALOCALTEST000001", "local-secret"), "us-east-1")
        )
        unsigned = requests.get(url, timeout=5)
    finally:
        api.shutdown()
        api.server_close()
    assert signed.status_code == 200 and len(seen) == 1
    remaining, identity = seen[0]
    assert 6_000 < remaining <= 7_000
    assert (identity["userArn"], identity["accountId"]) == (LOCAL_KEY.principal_arn, LOCAL_KEY.account)
    assert unsigned.status_code == 403 and unsigned.json()["error"]["type"] == "permission_error"


@pytest.mark.parametrize("length", ["-1", "abc", "1e3"])
def test_the_local_api_refuses_a_body_it_cannot_delimit_with_the_contracts_error(length):
    api = local_api.LocalApi(0, None, 7, {LOCAL_KEY.access_key_id: LOCAL_KEY}, "us-east-1")
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        with socket.create_connection((local_api.HOST, api.server_port), timeout=5) as connection:
            connection.sendall(f"POST /payments HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
            answer = connection.makefile("rb").read().decode()
    finally:
        api.shutdown()
        api.server_close()
    status, _, body = answer.partition("\r\n\r\n")
    assert status.startswith("HTTP/1.1 400")
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_content_length" and error["request_id"]


def test_a_member_name_pydantic_cannot_render_is_named_by_its_position_never_its_text():
    card_number_cut_by_a_surrogate = "4\ud800242424242424242"
    body = {"amount": 100, "currency": "usd", "metadata": {"order": "A-1", card_number_cut_by_a_surrogate: "x"}}
    as_pydantic_renders_it = "4\ufffd\ufffd\ufffd242424242424242"
    assert field_param(("metadata", as_pydantic_renders_it, "[key]"), body) == "metadata[1][key]"
    assert field_param(("source",), body) == "source"  # a member that is missing is named as it is spelled
