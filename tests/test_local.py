"""`make local` end to end over real HTTP: emulator, real Terraform, the sandbox
process and the API server, as a client developer meets them."""

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from client import CardDeclined, InvalidRequest, NotFound, verify_webhook
from lambdas.domain.checkpoints import signature_holds
from tests.conftest import REPO
from tests.service_fixtures import Sandbox
from tests.support.api import BAD_PAYMENTS, card
from tests.support.leaks import card_data_in, card_data_in_item
from tests.support.local_stack import CHECKPOINT_SECONDS, LocalStack, error_of, get, post

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def local():
    stack = LocalStack(PAYMENTS_LOCAL_CHECKPOINT_SECONDS=str(CHECKPOINT_SECONDS))
    stack.start()
    yield stack
    if stack.process.poll() is None:
        stack.stop()


def test_the_start_prints_where_everything_listens(local):
    text = "".join(local.output)
    for url in (local.api, local.sandbox, local.emulator, str(local.credentials)):
        assert url in text
    assert "python -m client" in text


def test_every_route_through_the_sdk(local):
    payments = local.client()
    token = payments.tokenize("4242424242424242", 12, 2030)
    assert token.token.startswith("tok_") and token.card.last4 == "4242"
    paid = payments.pay(1999, "usd", token=token.token, metadata={"order_id": "A-1"}, key="http-1")
    assert paid.status == "succeeded" and not paid.replayed
    replay = payments.pay(1999, "usd", token=token.token, metadata={"order_id": "A-1"}, key="http-1")
    assert replay.replayed and replay.id == paid.id
    assert payments.payment(paid.id) == paid
    refund = payments.refund(paid.id, 999, key="http-r1")
    assert refund.amount == 999 and refund.status == "succeeded"
    ledger = payments.ledger(paid.id)
    assert len(ledger) == 4
    debits = sum(e.amount for e in ledger if e.direction == "debit")
    assert debits == sum(e.amount for e in ledger if e.direction == "credit")
    assert sorted(e.sequence for e in ledger) == list(range(ledger[0].sequence, ledger[0].sequence + 4))
    assert all(e.hash and len(e.hash) == 64 for e in ledger)
    listed = list(payments.payments(page_size=1))  # the iterator, signed with the query string, page by page
    assert listed[0].id == paid.id and len({p.id for p in listed}) == len(listed)
    assert all(listed[i].created_at >= listed[i + 1].created_at for i in range(len(listed) - 1))
    balances = {(b.account, b.currency): b.amount for b in payments.balances()}
    assert sum(balances.values()) == 0 and balances[("merchant_balance", "USD")] <= -1000
    error_of(get(local, "/payments?limit=101"), 400, "invalid_request_error")


def test_signed_checkpoints_follow_the_ledger_and_check_with_the_public_key_alone(local):
    payments = local.client()
    key = payments.public_key()
    first = payments.latest_checkpoint()  # written as the stack started
    assert signature_holds(first.signed, key.pem) and first.key_id == key.key_id
    payments.pay(700, "usd", token=payments.tokenize("4242424242424242", 12, 2030).token)
    deadline = time.monotonic() + 30 * CHECKPOINT_SECONDS
    latest = first
    while latest.root == first.root and time.monotonic() < deadline:
        time.sleep(CHECKPOINT_SECONDS / 2)
        latest = payments.latest_checkpoint()
    assert latest.sequence > first.sequence and latest.root != first.root  # the ledger moved: a new checkpoint
    assert signature_holds(latest.signed, key.pem)
    assert not signature_holds(latest.signed | {"root": first.root}, key.pem)


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
                         "Content-Type": "application/json"}, timeout=30, auth=local.auth())  # fmt: skip
    error_of(huge, 413, "invalid_request_error")
    text = requests.post(f"{local.api}/payments", data="amount=5", headers={"Idempotency-Key": "t",
                         "Content-Type": "text/plain"}, timeout=30, auth=local.auth())  # fmt: skip
    error_of(text, 415, "invalid_request_error")
    broken = requests.post(f"{local.api}/payments", data="{", headers={"Idempotency-Key": "j",
                           "Content-Type": "application/json"}, timeout=30, auth=local.auth())  # fmt: skip
    error_of(broken, 400, "invalid_request_error")
    body = {"amount": 5, "currency": "usd", "source": {"card": card()}}
    post(local, "/payments", body, key="e-422")
    error_of(post(local, "/payments", {**body, "amount": 6}, key="e-422"), 422, "idempotency_error")
    error_of(requests.get(f"{local.api}/nowhere", timeout=10), 403, "permission_error")  # as API Gateway answers


# --- SigV4 and merchants ---------------------------------------------------------------


def stored_items(local) -> int:
    """Every item but the checkpoints, which the schedule writes every few seconds whatever requests arrive."""
    dynamodb = local.aws("dynamodb")
    return sum(
        dynamodb.scan(
            TableName=t,
            Select="COUNT",
            FilterExpression="NOT begins_with(pk, :checkpoint)",
            ExpressionAttributeValues={":checkpoint": {"S": "CHECKPOINT#"}},
        )["Count"]
        for t in dynamodb.list_tables()["TableNames"]
    )


def test_unsigned_badly_signed_and_unknown_signers_get_403_and_nothing_is_written(local):
    from botocore.credentials import Credentials

    from client import SigV4

    body = {"amount": 100, "currency": "usd", "source": {"card": card()}}
    before, charged = stored_items(local), len(local.charges())
    unsigned = requests.post(f"{local.api}/payments", json=body, headers={"Idempotency-Key": "u"}, timeout=30)
    assert error_of(unsigned, 403, "permission_error")["code"] == "missing_authentication_token"
    real = local.auth().credentials.get_frozen_credentials()
    forged = SigV4(Credentials(real.access_key, "not-the-secret"), "us-east-1")
    assert error_of(post(local, "/payments", body, key="f", auth=forged), 403, "permission_error")
    stranger = SigV4(Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "us-east-1")
    assert error_of(post(local, "/payments", body, key="s", auth=stranger), 403, "permission_error")
    assert stored_items(local) == before and len(local.charges()) == charged


def test_two_merchants_through_the_sdk_see_only_their_own(local):
    acme, globex = (local.client(merchant) for merchant in local.merchants[:2])
    token = acme.tokenize("4242424242424242", 12, 2030)
    paid = acme.pay(1500, "usd", token=token.token, key="shared-key")
    with pytest.raises(NotFound):
        globex.payment(paid.id)
    with pytest.raises(NotFound):
        globex.ledger(paid.id)
    with pytest.raises(NotFound):
        globex.refund(paid.id, 100)
    with pytest.raises(InvalidRequest) as unknown_token:
        globex.pay(1500, "usd", token=token.token)
    assert unknown_token.value.code == "token_not_found"
    globex_paid = globex.pay(1500, "usd", card=card(), key="shared-key")  # the same key, another merchant
    assert globex_paid.id != paid.id and not globex_paid.replayed
    assert acme.payment(paid.id).amount_refunded == 0
    with pytest.raises(NotFound):  # and the other way round
        acme.payment(globex_paid.id)
    # Lists: each merchant's own payments only, and the other's id is no cursor.
    acme_listed, globex_listed = ({p.id for p in client.payments()} for client in (acme, globex))
    assert paid.id in acme_listed and globex_paid.id not in acme_listed
    assert globex_paid.id in globex_listed and paid.id not in globex_listed
    # The same through raw signed requests: another merchant's payment answers exactly as an unknown one.
    globex_auth = local.auth(local.merchants[1])
    for path in (f"/payments/{paid.id}", f"/payments/{paid.id}/ledger"):
        theirs = get(local, path, auth=globex_auth)
        unknown = get(local, path.replace(paid.id, "pay_" + "0" * 24), auth=globex_auth)
        assert theirs.status_code == unknown.status_code == 404
        assert {**theirs.json()["error"], "request_id": ""} == {**unknown.json()["error"], "request_id": ""}
    refund = post(local, f"/payments/{paid.id}/refunds", {"amount": 1}, key="raw-r", auth=globex_auth)
    assert error_of(refund, 404, "invalid_request_error")
    cursor = get(local, f"/payments?starting_after={paid.id}", auth=globex_auth)
    assert error_of(cursor, 400, "invalid_request_error")["param"] == "starting_after"
    by_token = {"amount": 1500, "currency": "usd", "source": {"token": token.token}}
    charged = post(local, "/payments", by_token, key="raw-t", auth=globex_auth)
    assert error_of(charged, 400, "invalid_request_error")["code"] == "token_not_found"


def test_a_lost_answer_retried_through_the_sdk_settles_without_a_second_charge(local):
    """The sandbox charges and loses the answer (504); the SDK retries with the same key, and the service settles
    the pending payment by its reference instead of charging again."""
    acme = local.client()
    token = acme.tokenize("4242424242424242", 12, 2030).token
    before = len(local.charges())
    local.faults(drop_rate=1.0)  # every charge's answer is lost; lookups still answer
    try:
        settled = acme.pay(2500, "usd", token=token)
    finally:
        local.faults(drop_rate=0.0)
    assert settled.status == "succeeded" and settled.amount == 2500
    assert len(local.charges()) == before + 1
    with pytest.raises(CardDeclined):
        acme.pay(500, "usd", card=card("4000000000009995"))


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


@contextmanager
def signing_proxy(local):
    """A loopback proxy that signs each request as the first dev merchant: schemathesis sends unsigned ones."""
    auth = local.auth()

    class Forward(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = requests.request(self.command, f"{local.api}{self.path}", data=body, headers=headers, auth=auth,
                                      timeout=60)  # fmt: skip
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def __getattr__(self, name: str):
            if name.startswith("do_"):  # every method, as the API's route table sees them
                return self._forward
            raise AttributeError(name)

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_schema_driven_fuzzing_finds_no_server_errors(local):
    """schemathesis against docs/openapi.json, through a proxy that signs: no 5xx that the contract does not
    name, and every response matches its description. Bounded in examples."""
    with signing_proxy(local) as signed_api:
        result = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "--no-color", "run",
             str(REPO / "docs" / "openapi.json"), "--url", signed_api, "--checks",
             "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance",
             "--max-examples", "25", "--phases", "examples,coverage,fuzzing",
             "--rate-limit", "15/s", "--request-timeout", "30"],
            check=False, capture_output=True, text=True, timeout=900, cwd=REPO,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_throttling_answers_429_in_the_contract_shape(local):
    """A flood beyond the stage's burst is refused with 429s, and what gets through stays inside the bucket (the
    merchant's own, within the stage's: only what the merchant's plan admits spends the stage's tokens).

    The flood is requests the handler refuses before any AWS call (a body that is not JSON), so it
    outpaces the rate on a slow machine too; the counts are checked against the time it took. The
    bound takes the bucket as full at the start, so it holds whatever the tests before left in it."""
    from concurrent.futures import ThreadPoolExecutor

    from stacks.config import DEV

    throttling = DEV.throttling
    clients, per_client = 8, (4 * throttling.burst_limit) // 8

    auth = local.auth()

    def flood(_) -> list[requests.Response]:
        with requests.Session() as session:  # kept alive, as a busy client would
            return [session.post(f"{local.api}/payments", data="{", timeout=10, auth=auth,
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
    while requests.post(f"{local.api}/payments", data="{", timeout=10, auth=auth,
                        headers={"Content-Type": "application/json"}).status_code == 429:  # fmt: skip
        assert time.monotonic() < deadline, "the API still throttles after the flood"


def test_one_merchants_burst_never_makes_anothers_request_a_429(local):
    """globex (5/s, burst 10 in the dev configuration) floods past its own rate while acme's requests, sent
    meanwhile, all succeed; globex's refusals are the contract's 429 with Retry-After. Requests the handler refuses
    before any AWS call but the merchant lookup (a body that is not JSON) outpace the rate on a slow machine too."""
    from concurrent.futures import ThreadPoolExecutor

    from stacks.config import DEV

    globex_rate = DEV.merchant_rate(DEV.merchants[1])
    time.sleep(DEV.merchant_throttling.burst_limit / DEV.merchant_throttling.rate_limit)  # acme's bucket refilled
    clients, per_client = 8, (4 * globex_rate.burst_limit) // 8

    def flood(merchant: str, count: int = per_client) -> list[requests.Response]:
        auth = local.auth(merchant)
        with requests.Session() as session:
            return [session.post(f"{local.api}/payments", data="{", timeout=10, auth=auth,
                                 headers={"Content-Type": "application/json"}) for _ in range(count)]  # fmt: skip

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        globex = pool.map(flood, ["globex"] * clients)
        acme = flood("acme", 2 * globex_rate.burst_limit)  # more than globex's burst: acme's own bucket holds them
        globex_answers = [answer for batch in globex for answer in batch]
    capacity = globex_rate.burst_limit + globex_rate.rate_limit * (time.monotonic() - started)
    assert len(globex_answers) > capacity, f"{len(globex_answers)} did not outpace globex's bucket ({capacity:.0f})"
    assert [answer.status_code for answer in acme] == [400] * len(acme)  # refused as not JSON, never throttled
    throttled = [answer for answer in globex_answers if answer.status_code == 429]
    assert len(globex_answers) - len(throttled) <= capacity
    assert all(answer.headers["Retry-After"].isdigit() for answer in throttled)
    error_of(throttled[0], 429, "rate_limit_error")


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


# --- authorise, then capture ------------------------------------------------------------

WEEK = 7 * 24 * 3600


def authorise(local, amount: int, key: str) -> dict:
    body = {"amount": amount, "currency": "usd", "source": {"card": card()}, "capture": False}
    response = post(local, "/payments", body, key=key)
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["status"] == "requires_capture" and payment["amount_capturable"] == amount
    return payment


def sandbox_charge(local, charge_id: str) -> dict:
    return next(charge for charge in local.charges() if charge["id"] == charge_id)


def held(local) -> int:
    balances = {(b["account"], b["currency"]): b["amount"] for b in get(local, "/balances").json()["balances"]}
    assert sum(amount for (_, currency), amount in balances.items() if currency == "USD") == 0
    return balances.get(("authorization_hold", "USD"), 0)


def test_an_authorisation_captured_in_part_releases_the_rest_and_refunds_only_what_was_captured(local):
    before = held(local)
    payment = authorise(local, 5000, "auth-part")
    assert held(local) == before + 5000
    captured = post(local, f"/payments/{payment['id']}/capture", {"amount": 3000}, key="cap-part")
    assert captured.status_code == 200, captured.text
    assert captured.json()["status"] == "succeeded"
    assert (captured.json()["amount_captured"], captured.json()["amount_capturable"]) == (3000, 0)
    assert held(local) == before
    charge = sandbox_charge(local, payment["gateway"]["charge_id"])
    assert (charge["status"], charge["amount_captured"]) == ("succeeded", 3000)
    too_much = post(local, f"/payments/{payment['id']}/refunds", {"amount": 3001}, key="ref-part-1")
    error_of(too_much, 400, "invalid_request_error")
    refund = post(local, f"/payments/{payment['id']}/refunds", {}, key="ref-part-2")
    assert refund.status_code == 201 and refund.json()["amount"] == 3000
    again = post(local, f"/payments/{payment['id']}/capture", {}, key="cap-part-2")
    assert error_of(again, 400, "invalid_request_error")["code"] == "payment_not_capturable"


def test_a_cancelled_authorisation_is_voided_and_cannot_be_captured(local):
    before = held(local)
    payment = authorise(local, 1200, "auth-cancel")
    canceled = post(local, f"/payments/{payment['id']}/cancel", {}, key="cancel-1")
    assert canceled.status_code == 200, canceled.text
    assert (canceled.json()["status"], canceled.json()["cancellation_reason"]) == ("canceled", "requested_by_customer")
    assert sandbox_charge(local, payment["gateway"]["charge_id"])["status"] == "voided"
    assert held(local) == before
    late = post(local, f"/payments/{payment['id']}/capture", {}, key="cap-after-cancel")
    assert error_of(late, 400, "invalid_request_error")["code"] == "payment_not_capturable"


def test_a_capture_and_a_cancel_racing_on_one_payment_one_wins_and_the_other_is_refused(local):
    from concurrent.futures import ThreadPoolExecutor

    payment = authorise(local, 800, "auth-race")
    local.faults(latency_ms=300)
    try:
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda action: post(local, f"/payments/{payment['id']}/{action}", {}, key=f"race-{action}"),
                    ("capture", "cancel"),
                )
            )
    finally:
        local.faults(latency_ms=0)
    assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 200)
    charge = sandbox_charge(local, payment["gateway"]["charge_id"])
    assert charge["status"] == ("succeeded" if winner["status"] == "succeeded" else "voided")


def test_a_lost_capture_answer_leaves_the_authorisation_until_the_same_key_settles_it_once(local):
    payment = authorise(local, 2100, "auth-lost")
    local.faults(drop_rate=1.0)
    try:
        lost = post(local, f"/payments/{payment['id']}/capture", {}, key="cap-lost")
    finally:
        local.faults(drop_rate=0.0)
    assert error_of(lost, 504, "gateway_error")["payment_id"] == payment["id"]
    assert get(local, f"/payments/{payment['id']}").json()["status"] == "requires_capture"
    assert sandbox_charge(local, payment["gateway"]["charge_id"])["status"] == "succeeded"  # the gateway did it
    settled = post(local, f"/payments/{payment['id']}/capture", {}, key="cap-lost")
    assert settled.status_code == 200 and settled.json()["amount_captured"] == 2100
    assert len([c for c in local.charges() if c["reference"] == payment["id"]]) == 1


def test_an_authorisation_expired_at_the_gateway_is_canceled_when_captured(local):
    payment = authorise(local, 900, "auth-expire")
    local.advance_gateway_clock(WEEK + 1)
    refused = post(local, f"/payments/{payment['id']}/capture", {}, key="cap-expired")
    assert error_of(refused, 400, "invalid_request_error")["code"] == "payment_not_capturable"
    shown = get(local, f"/payments/{payment['id']}").json()
    assert (shown["status"], shown["cancellation_reason"]) == ("canceled", "expired")
    assert sandbox_charge(local, payment["gateway"]["charge_id"])["status"] == "expired"


def test_the_gateway_agrees_with_the_ledger_on_every_payment(local):
    """After every flow above (faults included), each payment's state and amounts are the sandbox charge's."""
    charges = {charge["reference"]: charge for charge in local.charges()}
    # an authorisation's charge may have expired at the gateway, whose clock another test moved on
    gateway_statuses = {"requires_capture": ("authorized", "expired"), "canceled": ("voided", "expired")}
    compared = 0
    for payment in local.client().payments(page_size=100):
        charge = charges.get(payment.id)
        if payment.status in ("pending", "failed") or charge is None:
            continue
        compared += 1
        if payment.status in ("succeeded", "partially_refunded", "refunded"):
            assert charge["status"] == "succeeded" and charge["amount_captured"] == payment.amount_captured
            assert charge["amount_refunded"] == payment.amount_refunded
        else:
            assert charge["status"] in gateway_statuses.get(payment.status, (payment.status,)), payment.id
    assert compared > 0


# --- events and webhooks ---------------------------------------------------------------------------


@contextmanager
def receiver():
    """A merchant's webhook receiver on 127.0.0.1: it keeps each delivery's raw body and signature."""
    received: list[tuple[bytes, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["Payments-Signature"]))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks", received
    finally:
        server.shutdown()


def events_received(received: list[tuple[bytes, str]], secret: str, expected: set[tuple[str, str]]) -> list:
    """Every delivery so far, verified, once each of the ``expected`` (type, object id) pairs has arrived (events of
    other tests' payments may arrive too)."""
    deadline = time.monotonic() + 60
    while True:
        events = [verify_webhook(body, signature, secret) for body, signature in list(received)]
        missing = expected - {(event.type, event.object_id) for event in events}
        if not missing:
            return events
        assert time.monotonic() < deadline, f"never delivered: {sorted(missing)}"
        time.sleep(0.5)


def test_a_receiver_gets_a_signed_event_for_every_change_and_redelivery_sends_one_again(local):
    acme = local.client()
    with receiver() as (url, received):
        endpoint = acme.create_webhook_endpoint(url, ["*"])
        try:
            paid = acme.pay(1500, "usd", card=card())
            with pytest.raises(CardDeclined) as declined:
                acme.pay(500, "usd", card=card("4000000000000002"))
            refund = acme.refund(paid.id, 500)
            captured = acme.capture(acme.authorize(900, "usd", card=card()).id, 600)
            canceled = acme.cancel(acme.authorize(700, "usd", card=card()).id)
            expected = {
                ("payment.succeeded", paid.id),
                ("payment.declined", declined.value.payment_id),
                ("refund.succeeded", refund.id),
                ("payment.requires_capture", captured.id),
                ("payment.succeeded", captured.id),
                ("payment.requires_capture", canceled.id),
                ("payment.canceled", canceled.id),
            }
            events = events_received(received, endpoint.secret, expected)
            again = next(event for event in events if event.object_id == refund.id)
            acme.redeliver(again.id)
            deadline = time.monotonic() + 60
            while [verify_webhook(b, s, endpoint.secret).id for b, s in list(received)].count(again.id) < 2:
                assert time.monotonic() < deadline, "the redelivery never came"
                time.sleep(0.5)
            assert all(d.status == 204 for d in acme.event_deliveries(again.id))
        finally:
            acme.delete_webhook_endpoint(endpoint.id)


@pytest.mark.parametrize(
    "url", ["https://169.254.169.254/latest", "https://10.0.0.1/", "https://[::1]/", "http://example.com/"]
)
def test_an_endpoint_that_names_an_internal_address_is_refused(local, url):
    error = error_of(post(local, "/webhook_endpoints", {"url": url, "events": ["*"]}, key=f"ssrf-{url}"), 400,
                     "invalid_request_error")  # fmt: skip
    assert (error["code"], error["param"]) == ("url_not_allowed", "url")


# --- settlements -----------------------------------------------------------------------------------


def make(local, target: str, *variables: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **{name: str(port) for name, port in local.ports.items()}, **local.environment}
    return subprocess.run(["make", "-s", target, *variables], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def settled(local) -> dict:
    """`make settle`'s counts: one import now, beside the one `make local` runs every 10 s."""
    run = make(local, "settle")
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def imported(payments, settlement_id: str, within: float = 180.0):
    """The merchant's share of the settlement once imported in full: a line of a payment another test left pending
    waits until reconciliation (every 10 s locally, after a minute) has settled it."""
    deadline = time.monotonic() + within
    while True:
        try:
            return payments.get_settlement(settlement_id)
        except NotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def test_a_settlement_is_reconciled_with_fees_and_its_mismatches_are_named(local):
    from sparkle_sandbox.settlements import fee

    payments = local.client()
    token = payments.tokenize("4242424242424242", 12, 2030).token
    matched = payments.pay(2000, "usd", token=token, key="settle-matched")
    refunded = payments.pay(1500, "usd", token=token, key="settle-refunded")
    payments.refund(refunded.id, 500, key="settle-refund")
    adjusted = payments.pay(3000, "usd", token=token, key="settle-adjusted")
    made = Sandbox(local.sandbox).settle(adjust={adjusted.id: 7}, unknown=1)
    (usd,) = [settlement for settlement in made if settlement["currency"] == "USD"]
    settled(local)

    share = imported(payments, usd["id"])
    assert share.status == "mismatched" and share.net == share.gross - share.fees
    (mismatch,) = share.mismatches  # the unknown line is the operator's, never the merchant's
    assert (mismatch.reference, mismatch.reason) == (adjusted.id, "amount_differs")
    assert (mismatch.ledger_amount, mismatch.gateway_amount) == (3000, 3007)
    assert usd["id"] in {listed.id for listed in payments.settlements()}
    booked = {(e.account, e.direction): e.amount for e in payments.ledger(matched.id)}
    assert booked[("gateway_fees", "debit")] == fee("charge", 2000) == 88
    assert booked[("bank", "debit")] == 2000 - 88
    refund_moves = [e for e in payments.ledger(refunded.id) if e.account == "bank"]
    assert {(e.direction, e.amount) for e in refund_moves} == {("debit", 1500 - fee("charge", 1500)), ("credit", 500)}
    assert ("bank", "debit") not in {(e.account, e.direction) for e in payments.ledger(adjusted.id)}

    balances = {(b.account, b.currency): b.amount for b in payments.balances()}
    assert sum(amount for (_, currency), amount in balances.items() if currency == "USD") == 0
    assert balances[("bank", "USD")] > 0 and balances[("gateway_fees", "USD")] > 0
    before = [(e.id, e.amount) for p in (matched, refunded, adjusted) for e in payments.ledger(p.id)]
    again = settled(local)
    assert (again["matched"], again["mismatched"], again["unknown_references"]) == (0, 0, 0)
    assert [(e.id, e.amount) for p in (matched, refunded, adjusted) for e in payments.ledger(p.id)] == before
    assert payments.get_settlement(usd["id"]) == share
    assert {(b.account, b.currency): b.amount for b in payments.balances()} == balances

    day = time.strftime("%Y-%m-%d", time.gmtime(usd["created"]))
    report = make(local, "settlement-report", f"FROM={day}", f"TO={day}")
    assert report.returncode == 0, report.stdout + report.stderr
    assert usd["id"] in report.stdout and "unknown_reference" in report.stdout and "amount_differs" in report.stdout


# --- last: what every flow above left in the ledger ----------------------------------------------------


def test_make_demo_runs_every_flow_and_verifies_a_signed_event(local):
    demo = make(local, "demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "verified by the SDK from the raw body" in demo.stdout and "refused:" in demo.stdout


def test_make_verify_checks_the_ledger_every_flow_left_and_its_checkpoints(local):
    """After authorisations, captures, cancels, refunds, webhooks, settlements and the demo: holds, fees and bank
    entries included."""
    payments = local.client()
    payments.pay(800, "usd", token=payments.tokenize("4242424242424242", 12, 2030).token)
    verified = make(local, "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("intact: "), verified.stdout + verified.stderr
    assert any((local.checkpoints / merchant).glob("*.json") for merchant in local.merchants)  # the copy it held to
