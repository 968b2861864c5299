"""Idempotency as the contract states it, under concurrency and lost answers."""

import threading
import time
from datetime import timedelta

from lambdas import bootstrap
from tests.support.api import assert_error, card, pay, tokenize
from tests.support.events import body_of, invoke


def test_same_key_same_body_replays_the_first_answer(aws_env, sandbox):
    body = {"amount": 1999, "currency": "usd", "source": {"token": tokenize()}, "metadata": {"order_id": "A-1"}}
    first = pay(body, key="order-A-1")
    again = pay(body, key="order-A-1")
    assert again["statusCode"] == first["statusCode"] == 201
    assert again["body"] == first["body"] and again["headers"]["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first["headers"]
    assert len(sandbox.charges()) == 1


def test_declines_are_replayed_too(aws_env, sandbox):
    body = {"amount": 100, "currency": "usd", "source": {"card": card("4000000000000002")}}
    first, again = pay(body, key="d"), pay(body, key="d")
    assert again["statusCode"] == first["statusCode"] == 402 and again["body"] == first["body"]
    assert len(sandbox.charges()) == 1


def test_same_key_different_body_is_422(aws_env):
    token = tokenize()
    pay({"amount": 100, "currency": "usd", "source": {"token": token}}, key="k")
    assert_error(pay({"amount": 101, "currency": "usd", "source": {"token": token}}, key="k"), 422, "idempotency_error")


def test_same_key_with_another_card_is_422_and_charges_nothing_more(aws_env, sandbox):
    """The card is part of the request a key names: another number or expiry is another request."""
    first = {"amount": 100, "currency": "usd", "source": {"card": card("5555555555554444")}}
    assert pay(first, key="card-k")["statusCode"] == 201
    others = {
        "number": card("4242424242424242"),
        "expiry": card("5555555555554444", exp_month=11),
    }
    answered = {case: pay({**first, "source": {"card": other}}, key="card-k") for case, other in others.items()}
    replayed = {case: answer["statusCode"] for case, answer in answered.items() if answer["statusCode"] != 422}
    assert replayed == {}, f"answered, not refused as a reused key: {replayed}"
    for answer in answered.values():
        assert_error(answer, 422, "idempotency_error")
    assert len(sandbox.charges()) == 1


def test_keys_are_scoped_to_the_route(aws_env, sandbox):
    """And to the merchant: tests/test_merchants.py."""
    paid = body_of(pay({"amount": 100, "currency": "usd", "source": {"token": tokenize()}}, key="shared"))
    path = f"/payments/{paid['id']}/refunds"
    refund = invoke("POST", path, {"amount": 1}, headers={"Idempotency-Key": "shared"})
    assert refund["statusCode"] == 201 and len(sandbox.charges()) == 1


def test_refunds_are_idempotent(aws_env, sandbox):
    payment = body_of(pay({"amount": 1000, "currency": "usd", "source": {"token": tokenize()}}))
    path = f"/payments/{payment['id']}/refunds"
    first = invoke("POST", path, {"amount": 300}, headers={"Idempotency-Key": "r"})
    again = invoke("POST", path, {"amount": 300}, headers={"Idempotency-Key": "r"})
    assert again["body"] == first["body"] and again["headers"]["Idempotent-Replayed"] == "true"
    assert body_of(invoke("GET", f"/payments/{payment['id']}"))["amount_refunded"] == 300


def test_twenty_concurrent_requests_with_one_key_charge_once(aws_env, sandbox, atomic_requests):
    sandbox.faults(latency_ms=300)  # keeps the first request in flight while the others arrive
    bootstrap.adapters()  # one container's adapters, shared by the threads as Lambda would not: harsher
    body = {"amount": 2500, "currency": "usd", "source": {"card": card()}, "metadata": {"cart": "c-9"}}
    responses, barrier = [], threading.Barrier(20)

    def attempt():
        barrier.wait()
        responses.append(pay(body, key="concurrent"))

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r["statusCode"] for r in responses)
    created = [r for r in responses if r["statusCode"] == 201]
    assert set(statuses) <= {201, 409} and len(responses) == 20
    assert len([r for r in created if "Idempotent-Replayed" not in r["headers"]]) == 1
    for conflict in (r for r in responses if r["statusCode"] == 409):
        assert body_of(conflict)["error"]["type"] == "idempotency_error"
    assert len(sandbox.charges()) == 1
    ids = {body_of(r)["id"] for r in created}
    assert len(ids) == 1
    sandbox.faults(latency_ms=0)
    assert pay(body, key="concurrent")["headers"]["Idempotent-Replayed"] == "true"


def test_a_lost_answer_leaves_the_payment_pending_and_a_retry_settles_it_without_a_second_charge(aws_env, sandbox):
    body = {"amount": 4200, "currency": "usd", "source": {"card": card("4000000000003220")}}
    started = time.monotonic()
    lost = assert_error(pay(body, key="slow"), 504, "gateway_error")  # the client gives up after 1 s (x3 attempts)
    assert time.monotonic() - started < 10
    assert body_of(invoke("GET", f"/payments/{lost['payment_id']}"))["status"] == "pending"
    retried = pay(body, key="slow")  # at once: the charge exists at the gateway, only its answer was lost
    assert retried["statusCode"] == 201, retried["body"]
    payment = body_of(retried)
    assert payment["id"] == lost["payment_id"] and payment["status"] == "succeeded"
    assert len(sandbox.charges()) == 1 and payment["gateway"]["charge_id"] == sandbox.charges()[0]["id"]
    assert pay(body, key="slow")["headers"]["Idempotent-Replayed"] == "true"
    assert len(body_of(invoke("GET", f"/payments/{payment['id']}/ledger"))["entries"]) == 2


def test_a_gateway_outage_is_502_not_stored_and_a_retry_charges_once(aws_env, sandbox):
    sandbox.faults(error_rate=1.0)
    body = {"amount": 700, "currency": "usd", "source": {"token": tokenize()}}
    failed = assert_error(pay(body, key="outage"), 502, "gateway_error")
    assert sandbox.charges() == []
    sandbox.faults(error_rate=0.0)
    retried = body_of(pay(body, key="outage"))
    assert retried["id"] == failed["payment_id"] and retried["status"] == "succeeded"
    assert len(sandbox.charges()) == 1


def pay_losing_every_answer(sandbox, body: dict, key: str) -> dict:
    """Pay while the sandbox drops every answer: a 504 whose payment stays pending; faults off after."""
    sandbox.faults(drop_rate=1.0)
    lost = assert_error(pay(body, key=key), 504, "gateway_error")
    sandbox.faults(drop_rate=0.0)
    return lost


def test_dropped_answers_are_settled_by_reference_not_charged_again(aws_env, sandbox):
    body = {"amount": 900, "currency": "usd", "source": {"token": tokenize()}}
    lost = pay_losing_every_answer(sandbox, body, "dropped")
    assert len(sandbox.charges()) == 1  # retries reused the key: the sandbox replayed, it did not charge again
    settled = body_of(pay(body, key="dropped"))
    assert settled["id"] == lost["payment_id"] and settled["status"] == "succeeded"
    assert len(sandbox.charges()) == 1


def test_reconciliation_settles_what_a_client_never_retried(aws_env, sandbox):
    lost = pay_losing_every_answer(sandbox, {"amount": 900, "currency": "usd", "source": {"token": tokenize()}}, "x")
    counts = bootstrap.tenancy().reconcile(settle_after=timedelta(0))
    assert counts == {
        "settled": 1,
        "failed": 0,
        "expired": 0,
        "still_pending": 0,
        "errors": 0,
        "deferred": 0,
        "overdue": 0,
    }
    assert body_of(invoke("GET", f"/payments/{lost['payment_id']}"))["status"] == "succeeded"
    assert len(sandbox.charges()) == 1


def test_a_retry_after_reconciliation_answers_the_settled_payment(aws_env, sandbox):
    body = {"amount": 650, "currency": "usd", "source": {"token": tokenize()}}
    lost = pay_losing_every_answer(sandbox, body, "late")
    assert bootstrap.tenancy().reconcile(settle_after=timedelta(0))["settled"] == 1
    retried = pay(body, key="late")
    assert retried["statusCode"] == 201 and body_of(retried)["id"] == lost["payment_id"]
    assert pay(body, key="late")["headers"]["Idempotent-Replayed"] == "true"
    assert len(sandbox.charges()) == 1


def test_when_reconciliation_settles_first_the_request_answers_the_settled_payment(aws_env, sandbox, monkeypatch):
    from types import SimpleNamespace

    adapters = bootstrap.adapters()
    gateway = adapters.gateway

    def charge_then_reconcile(*args, **kwargs):
        charge = gateway.charge(*args, **kwargs)
        monkeypatch.setattr(adapters, "gateway", gateway)  # the scheduled run, with its own gateway, wins the race
        assert bootstrap.tenancy().reconcile(settle_after=timedelta(0))["settled"] == 1
        return charge

    raced = SimpleNamespace(charge=charge_then_reconcile, find_charge=gateway.find_charge)
    monkeypatch.setattr(adapters, "gateway", raced)
    paid = pay({"amount": 810, "currency": "usd", "source": {"token": tokenize()}}, key="raced")
    assert paid["statusCode"] == 201 and body_of(paid)["status"] == "succeeded"
    assert len(body_of(invoke("GET", f"/payments/{body_of(paid)['id']}/ledger"))["entries"]) == 2
    assert len(sandbox.charges()) == 1
