"""`make local` end to end over real HTTP: emulator, real Terraform, the sandbox
process and the API server, as a client developer meets them."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO
from tests.leaks import card_data_in, card_data_in_item
from tests.service_fixtures import Sandbox
from tests.test_api import BAD_PAYMENTS, card
from tools.local_process import LocalProcess

pytestmark = pytest.mark.local


class LocalStack(LocalProcess):
    def faults(self, **settings) -> None:
        Sandbox(self.sandbox).faults(**settings)

    def charges(self) -> list[dict]:
        return Sandbox(self.sandbox).charges()


@pytest.fixture(scope="module")
def local():
    stack = LocalStack()
    stack.start()
    yield stack
    if stack.process.poll() is None:
        stack.stop()


def post(local, path: str, body=None, key: str | None = None, **kwargs) -> requests.Response:
    headers = {"Idempotency-Key": key} if key else {}
    response = requests.post(f"{local.api}{path}", json=body, headers=headers, timeout=60, **kwargs)
    assert card_data_in(response.text) == []
    return response


def get(local, path: str) -> requests.Response:
    response = requests.get(f"{local.api}{path}", timeout=30)
    assert card_data_in(response.text) == []
    return response


def error_of(response: requests.Response, status: int, error_type: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["type"] == error_type and error["request_id"] and error["message"]
    return error


def test_the_start_prints_where_everything_listens(local):
    text = "".join(local.output)
    for url in (local.api, local.sandbox, local.emulator):
        assert url in text
    assert "curl" in text


def test_every_route_over_http(local):
    token = post(local, "/tokens", {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}})
    assert token.status_code == 201
    body = {
        "amount": 1999,
        "currency": "usd",
        "source": {"token": token.json()["token"]},
        "metadata": {"order_id": "A-1"},
    }
    paid = post(local, "/payments", body, key="http-1")
    assert paid.status_code == 201 and paid.json()["status"] == "succeeded"
    replay = post(local, "/payments", body, key="http-1")
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == paid.json()
    payment_id = paid.json()["id"]
    assert get(local, f"/payments/{payment_id}").json() == paid.json()
    refund = post(local, f"/payments/{payment_id}/refunds", {"amount": 999}, key="http-r1")
    assert refund.status_code == 201 and refund.json()["amount"] == 999
    ledger = get(local, f"/payments/{payment_id}/ledger").json()["entries"]
    assert len(ledger) == 4
    assert sum(e["amount"] for e in ledger if e["direction"] == "debit") == sum(
        e["amount"] for e in ledger if e["direction"] == "credit"
    )


@pytest.mark.parametrize("body, param", BAD_PAYMENTS[:8])
def test_invalid_requests_are_400(local, body, param):
    assert error_of(post(local, "/payments", body, key=f"bad-{param}"), 400, "invalid_request_error")[
        "param"
    ].startswith(param)


def test_error_rows_of_the_contract(local):
    declined = error_of(post(local, "/payments", {"amount": 5, "currency": "usd",
                                                  "source": {"card": card("4000000000009995")}}, key="e-402"),
                        402, "card_error")  # fmt: skip
    assert declined["decline_code"] == "insufficient_funds" and declined["payment_id"].startswith("pay_")
    error_of(get(local, "/payments/pay_000000000000000000000000"), 404, "invalid_request_error")
    error_of(post(local, "/payments", {"amount": 5, "currency": "usd", "source": {"token": "tok_x"}}), 400,
             "invalid_request_error")  # no Idempotency-Key  # fmt: skip
    huge = requests.post(f"{local.api}/payments", data="x" * 40_000, headers={"Idempotency-Key": "big",
                         "Content-Type": "application/json"}, timeout=30)  # fmt: skip
    error_of(huge, 413, "invalid_request_error")
    text = requests.post(f"{local.api}/payments", data="amount=5", headers={"Idempotency-Key": "t",
                         "Content-Type": "text/plain"}, timeout=30)  # fmt: skip
    error_of(text, 415, "invalid_request_error")
    broken = requests.post(f"{local.api}/payments", data="{", headers={"Idempotency-Key": "j",
                           "Content-Type": "application/json"}, timeout=30)  # fmt: skip
    error_of(broken, 400, "invalid_request_error")
    body = {"amount": 5, "currency": "usd", "source": {"card": card()}}
    post(local, "/payments", body, key="e-422")
    error_of(post(local, "/payments", {**body, "amount": 6}, key="e-422"), 422, "idempotency_error")
    error_of(requests.get(f"{local.api}/nowhere", timeout=10), 403, "invalid_request_error")


def test_gateway_faults_give_502_and_504_and_leave_the_payment_pending(local):
    body = {"amount": 300, "currency": "usd", "source": {"card": card()}}
    local.faults(error_rate=1.0)
    failed = error_of(post(local, "/payments", body, key="fault-502"), 502, "gateway_error")
    local.faults(error_rate=0.0, drop_rate=1.0)
    lost = error_of(post(local, "/payments", {**body, "amount": 301}, key="fault-504"), 504, "gateway_error")
    local.faults(drop_rate=0.0)
    for error in (failed, lost):
        assert get(local, f"/payments/{error['payment_id']}").json()["status"] == "pending"
    settled = post(local, "/payments", {**body, "amount": 301}, key="fault-504")
    assert settled.status_code == 201 and settled.json()["id"] == lost["payment_id"]


def test_concurrent_requests_with_one_key_charge_once(local):
    from concurrent.futures import ThreadPoolExecutor

    before = len(local.charges())
    local.faults(latency_ms=400)
    body = {"amount": 777, "currency": "usd", "source": {"card": card()}}
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(
            r.status_code for r in pool.map(lambda _: post(local, "/payments", body, key="race"), range(8))
        )
    local.faults(latency_ms=0)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    assert len(local.charges()) == before + 1


def test_schema_driven_fuzzing_finds_no_server_errors(local):
    """schemathesis against docs/openapi.json: no 5xx that the contract does not
    name, and every response matches its description. Bounded in examples."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "--no-color", "run", str(REPO / "docs" / "openapi.json"),
         "--url", local.api, "--checks", "not_a_server_error,status_code_conformance,response_schema_conformance,"
         "content_type_conformance", "--max-examples", "25", "--phases", "examples,coverage,fuzzing",
         "--rate-limit", "15/s", "--request-timeout", "30"],
        check=False, capture_output=True, text=True, timeout=900, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_throttling_answers_429_in_the_contract_shape(local):
    """A flood beyond the stage's burst is refused with 429s, and what gets through stays inside the bucket.

    The flood is requests the handler refuses before any AWS call (a body that is not JSON), so it
    outpaces the rate on a slow machine too; the counts are checked against the time it took. The
    bound takes the bucket as full at the start, so it holds whatever the tests before left in it."""
    from concurrent.futures import ThreadPoolExecutor

    from stacks.config import ENVIRONMENTS

    throttling = ENVIRONMENTS["dev"].throttling
    clients, per_client = 8, (4 * throttling.burst_limit) // 8

    def flood(_) -> list[requests.Response]:
        with requests.Session() as session:  # kept alive, as a busy client would
            return [session.post(f"{local.api}/payments", data="{", timeout=10,
                                 headers={"Content-Type": "application/json"}) for _ in range(per_client)]  # fmt: skip

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        responses = [r for batch in pool.map(flood, range(clients)) for r in batch]
    capacity = throttling.burst_limit + throttling.rate_limit * (time.monotonic() - started)
    throttled = [r for r in responses if r.status_code == 429]
    assert all(r.status_code in (400, 429) for r in responses)
    assert len(responses) > capacity, f"{len(responses)} requests did not outpace the bucket ({capacity:.0f})"
    assert len(responses) - len(throttled) <= capacity  # so at least the excess was refused
    error_of(throttled[0], 429, "rate_limit_error")
    deadline = time.monotonic() + 5  # the bucket refills a token in 1/rate s: the API admits requests again
    while requests.post(f"{local.api}/payments", data="{", timeout=10,
                        headers={"Content-Type": "application/json"}).status_code == 429:  # fmt: skip
        assert time.monotonic() < deadline, "the API still throttles after the flood"


def test_no_card_data_in_the_emulator_or_the_terraform_state(local):
    dynamodb, logs = local.aws("dynamodb"), local.aws("logs")
    items = 0
    for table in dynamodb.list_tables()["TableNames"]:
        for item in dynamodb.scan(TableName=table)["Items"]:
            assert card_data_in_item(item) == [], table
            items += 1
    events = 0
    for group in logs.describe_log_groups()["logGroups"]:
        for event in logs.filter_log_events(logGroupName=group["logGroupName"]).get("events", []):
            assert card_data_in(event["message"]) == [], group["logGroupName"]
            events += 1
    assert items > 20 and events > 20  # the scans saw the end-to-end run
    state = local.state_file().read_text()
    assert "aws_dynamodb_table" in state and card_data_in(state) == []


def test_stop_frees_every_port_and_a_second_start_works(local):
    assert local.stop() == 0
    assert local.bound_ports() == []
    again = LocalStack(local.ports)  # the same ports: nothing may be left bound
    again.start()
    try:
        token = post(again, "/tokens", {"card": {"number": "5555555555554444", "exp_month": 12, "exp_year": 2030}})
        assert token.status_code == 201
        assert (
            again.aws("dynamodb").scan(TableName="payments-dev-ledger", Select="COUNT")["Count"] == 1
        )  # a fresh start
    finally:
        assert again.stop() == 0
    assert again.bound_ports() == []
