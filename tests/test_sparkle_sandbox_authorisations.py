"""The sandbox's authorisations over raw HTTP, beyond what the client sends (test_gateway_contract.py holds the
client and the fake to one behaviour): a capture of all that is held, the sandbox's clock, and what it refuses."""

import time
import uuid

import pytest
import requests

from sparkle_sandbox.server import AUTHORIZATION_SECONDS, DEFAULT_SECRET_KEY

VISA = "4242424242424242"


def post(sandbox, path: str, body: object, key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {DEFAULT_SECRET_KEY}", **({"Idempotency-Key": key} if key else {})}
    return requests.post(f"{sandbox.url}{path}", json=body, headers=headers, timeout=5)


def get(sandbox, path: str) -> dict:
    headers = {"Authorization": f"Bearer {DEFAULT_SECRET_KEY}"}
    return requests.get(f"{sandbox.url}{path}", headers=headers, timeout=5).json()


def authorise(sandbox, **changes) -> requests.Response:
    card = {"number": VISA, "exp_month": 12, "exp_year": 2030}
    body = {"amount": 1000, "currency": "usd", "reference": "pay_s", "capture": False, "card": card, **changes}
    return post(sandbox, "/v1/charges", body, key=uuid.uuid4().hex)


def advance(sandbox, seconds: object) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance": seconds}, timeout=5)


def test_a_capture_without_an_amount_captures_all_that_is_held(sandbox):
    held = authorise(sandbox).json()
    answer = post(sandbox, f"/v1/charges/{held['id']}/capture", {}, key="cap")
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["amount_captured"], answer.json()["amount_capturable"]) == (
        "succeeded", 1000, 0)  # fmt: skip


@pytest.mark.parametrize("amount", [0, -1, "5", True, 2.5])
def test_a_capture_amount_must_be_a_positive_integer(sandbox, amount):
    held = authorise(sandbox).json()
    answer = post(sandbox, f"/v1/charges/{held['id']}/capture", {"amount": amount}, key="cap")
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")
    assert get(sandbox, f"/v1/charges/{held['id']}")["status"] == "authorized"


@pytest.mark.parametrize("capture", ["false", 0, None])
def test_capture_must_be_true_or_false(sandbox, capture):
    answer = authorise(sandbox, capture=capture)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")
    assert sandbox.charges() == []


def test_the_clock_only_moves_forward_and_a_reset_puts_it_back(sandbox):
    moved = advance(sandbox, 3600)
    assert moved.status_code == 200 and abs(moved.json()["now"] - (time.time() + 3600)) < 5
    for refused in (-1, "1", None, True):
        assert advance(sandbox, refused).status_code == 400
    assert abs(advance(sandbox, 0).json()["now"] - (time.time() + 3600)) < 5
    sandbox.reset()
    assert abs(advance(sandbox, 0).json()["now"] - time.time()) < 5


def test_charges_are_made_and_expire_on_the_sandbox_clock_and_every_lookup_shows_it(sandbox):
    advance(sandbox, 86400)
    held = authorise(sandbox).json()
    assert abs(held["created"] - (time.time() + 86400)) < 5
    assert held["expires"] == held["created"] + AUTHORIZATION_SECONDS
    advance(sandbox, AUTHORIZATION_SECONDS)
    by_id = get(sandbox, f"/v1/charges/{held['id']}")
    assert (by_id["status"], by_id["amount_capturable"], by_id["amount_captured"]) == ("expired", 0, 0)
    assert [c["status"] for c in get(sandbox, "/v1/charges?reference=pay_s")["data"]] == ["expired"]
    assert [c["status"] for c in sandbox.charges()] == ["expired"]


def test_capture_and_void_need_an_idempotency_key_and_a_charge_has_no_other_actions(sandbox):
    held = authorise(sandbox).json()
    for action in ("capture", "void"):
        answer = post(sandbox, f"/v1/charges/{held['id']}/{action}", {})
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, "idempotency_key_missing")
    for path in (f"/v1/charges/{held['id']}/refund", f"/v1/charges/{held['id']}/capture/void", "/v1/charges//void"):
        assert post(sandbox, path, {}, key=uuid.uuid4().hex).status_code == 404
    assert get(sandbox, f"/v1/charges/{held['id']}")["status"] == "authorized"
