"""Every route and every error row of shared/docs/api-contract.md, through the
real handlers: AWS in moto (in process), the Sparkle sandbox as a real process."""

import base64
import json

import boto3
import pytest

from lambdas.storage_schema import Partition
from tests.service_fixtures import REGION
from tests.support.api import BAD_PAYMENTS, CVC, VISA, assert_error, card, pay, stored_items, tokenize
from tests.support.cases import assert_holds_for_each
from tests.support.events import body_of, invoke
from tests.support.fakes import MERCHANT

# --- POST /tokens ----------------------------------------------------------------


def test_a_card_is_vaulted_and_only_its_masked_form_returned(aws_env):
    response = invoke(
        "POST", "/tokens", {"card": {**VISA, "number": "4242 4242 4242 4242", "holder_name": "A. Lovelace"}}
    )
    assert response["statusCode"] == 201
    body = body_of(response)
    assert body["token"].startswith("tok_")
    assert body["card"] == {
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
        "fingerprint": body["card"]["fingerprint"],
    }
    assert body["created_at"].endswith("Z")
    again = body_of(invoke("POST", "/tokens", {"card": VISA}))
    assert again["card"]["fingerprint"] == body["card"]["fingerprint"] and again["token"] != body["token"]
    other = body_of(invoke("POST", "/tokens", {"card": {**VISA, "number": "5555555555554444"}}))
    assert other["card"]["fingerprint"] != body["card"]["fingerprint"] and other["card"]["brand"] == "mastercard"


def test_the_fingerprint_is_the_kms_mac_of_the_number_under_the_fingerprint_key(aws_env):
    fingerprint = body_of(invoke("POST", "/tokens", {"card": VISA}))["card"]["fingerprint"]
    kms = boto3.client("kms", region_name=REGION)
    mac = kms.generate_mac(KeyId=aws_env["FINGERPRINT_KEY_ID"], MacAlgorithm="HMAC_SHA_256",
                           Message=VISA["number"].encode())["Mac"]  # fmt: skip
    assert base64.urlsafe_b64decode(fingerprint + "=" * (-len(fingerprint) % 4)) == mac


def test_a_cvc_is_refused_when_vaulting_and_nothing_is_written(aws_env):
    assert_error(invoke("POST", "/tokens", {"card": {**VISA, "cvc": CVC}}), 400, "invalid_request_error", "card.cvc")
    assert stored_items(aws_env) == 0


def test_the_vaulted_number_is_stored_only_encrypted_and_bound_to_its_token(aws_env):
    token = tokenize()
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    (item,) = dynamodb.scan(TableName=aws_env["LEDGER_TABLE"])["Items"]
    assert item["pk"]["S"] == Partition.TOKEN.key(MERCHANT, token) and set(item["card"]["M"]) == {"key", "nonce", "ct"}
    # The same ciphertext under another token id does not open.
    other = tokenize("5555555555554444")
    moved = {**item, "pk": {"S": Partition.TOKEN.key(MERCHANT, other)}}
    dynamodb.put_item(TableName=aws_env["LEDGER_TABLE"], Item=moved)
    assert_error(pay({"amount": 100, "currency": "usd", "source": {"token": other}}), 500, "api_error")


# --- POST /payments and GET /payments/{id} ------------------------------------------


def test_a_token_payment_succeeds_and_reads_back_without_card_data(aws_env, sandbox):
    token = tokenize()
    response = pay(
        {
            "amount": 1999,
            "currency": "usd",
            "source": {"token": token},
            "description": "Order A-1001",
            "metadata": {"order_id": "A-1001"},
        }
    )
    assert response["statusCode"] == 201
    payment = body_of(response)
    assert payment["id"].startswith("pay_") and payment["status"] == "succeeded"
    assert (payment["amount"], payment["currency"], payment["amount_refunded"]) == (1999, "USD", 0)
    assert payment["card"]["last4"] == "4242" and set(payment["card"]) == {"brand", "last4", "fingerprint"}
    assert payment["gateway"]["name"] == "sparkle" and payment["gateway"]["charge_id"].startswith("ch_")
    assert payment["metadata"] == {"order_id": "A-1001"}
    assert [c["id"] for c in sandbox.charges()] == [payment["gateway"]["charge_id"]]
    read = invoke("GET", f"/payments/{payment['id']}")
    assert read["statusCode"] == 200 and body_of(read) == payment


def test_metadata_is_stored_encrypted(aws_env):
    pay({"amount": 100, "currency": "usd", "source": {"token": tokenize()}, "metadata": {"order_id": "SECRET-ORDER"}})
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for table in ("LEDGER_TABLE", "IDEMPOTENCY_TABLE"):
        assert "SECRET-ORDER" not in json.dumps(dynamodb.scan(TableName=aws_env[table])["Items"], default=str)


@pytest.mark.parametrize("number", ["4242424242424242", "5555555555554444", "378282246310005", "6011111111111117"])
def test_succeeding_sandbox_cards(aws_env, number):
    cvc = "7373" if number.startswith("37") else CVC
    response = pay({"amount": 500, "currency": "EUR", "source": {"card": card(number, cvc)}})
    assert response["statusCode"] == 201 and body_of(response)["card"]["last4"] == number[-4:]


@pytest.mark.parametrize(
    "number, decline_code",
    [
        ("4000000000000002", "generic_decline"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
        ("4000000000000127", "incorrect_cvc"),
    ],
)
def test_declining_sandbox_cards_are_recorded_and_move_no_money(aws_env, number, decline_code):
    error = assert_error(pay({"amount": 500, "currency": "usd", "source": {"card": card(number)}}), 402, "card_error")
    assert (error["code"], error["decline_code"]) == ("card_declined", decline_code)
    payment = body_of(invoke("GET", f"/payments/{error['payment_id']}"))
    assert payment["status"] == "declined"
    assert body_of(invoke("GET", f"/payments/{error['payment_id']}/ledger"))["entries"] == []


def test_processing_error_card_leaves_the_payment_pending_with_502(aws_env, sandbox):
    error = assert_error(
        pay({"amount": 500, "currency": "usd", "source": {"card": card("4000000000000119")}}), 502, "gateway_error"
    )
    assert body_of(invoke("GET", f"/payments/{error['payment_id']}"))["status"] == "pending"
    assert sandbox.charges() == []


def test_a_rule_decline_names_the_rule(aws_env):
    token = tokenize()
    for n in range(5):  # the test rules allow five payments per card per hour
        assert pay({"amount": 100, "currency": "usd", "source": {"token": token}}, key=f"v-{n}")["statusCode"] == 201
    error = assert_error(
        pay({"amount": 100, "currency": "usd", "source": {"token": token}}, key="v-6"), 402, "card_error"
    )
    assert error["decline_code"] == "rule_blocked" and "velocity_per_hour" in error["message"]
    assert body_of(invoke("GET", f"/payments/{error['payment_id']}"))["status"] == "declined"
    over = pay({"amount": 1_000_001, "currency": "usd", "source": {"card": card("5555555555554444")}}, key="big")
    assert "max_amount" in assert_error(over, 402, "card_error")["message"]


def test_unknown_payment_is_404(aws_env):
    assert_error(invoke("GET", "/payments/pay_000000000000000000000000"), 404, "invalid_request_error")
    assert_error(invoke("GET", "/payments/nope/ledger"), 404, "invalid_request_error")


# --- refunds and the ledger -------------------------------------------------------------


def test_refunds_add_reversing_entries_and_the_ledger_balances(aws_env):
    payment = body_of(pay({"amount": 1000, "currency": "usd", "source": {"token": tokenize()}}))
    refund = invoke("POST", f"/payments/{payment['id']}/refunds", {"amount": 400}, headers={"Idempotency-Key": "r1"})
    assert refund["statusCode"] == 201
    body = body_of(refund)
    assert body["id"].startswith("re_") and (body["payment_id"], body["amount"], body["status"]) == (
        payment["id"],
        400,
        "succeeded",
    )
    rest = body_of(invoke("POST", f"/payments/{payment['id']}/refunds", None, headers={"Idempotency-Key": "r2"}))
    assert rest["amount"] == 600
    read = body_of(invoke("GET", f"/payments/{payment['id']}"))
    assert (read["status"], read["amount_refunded"]) == ("refunded", 1000)
    ledger = body_of(invoke("GET", f"/payments/{payment['id']}/ledger"))
    entries = ledger["entries"]
    assert ledger["payment_id"] == payment["id"] and len(entries) == 6
    assert all(e["id"].startswith("le_") and e["currency"] == "USD" for e in entries)
    debits = sum(e["amount"] for e in entries if e["direction"] == "debit")
    assert debits == sum(e["amount"] for e in entries if e["direction"] == "credit") == 2000
    # The capture's entries are still there as first written: refunds only added entries.
    assert [e["amount"] for e in entries[:2]] == [1000, 1000]


def test_refunding_more_than_is_left_or_a_declined_payment_is_refused(aws_env):
    payment = body_of(pay({"amount": 1000, "currency": "usd", "source": {"token": tokenize()}}))
    too_much = invoke("POST", f"/payments/{payment['id']}/refunds", {"amount": 1001}, headers={"Idempotency-Key": "r"})
    assert_error(too_much, 400, "invalid_request_error", "amount")
    declined = assert_error(
        pay({"amount": 5, "currency": "usd", "source": {"card": card("4000000000000002")}}, key="d"), 402, "card_error"
    )
    refused = invoke("POST", f"/payments/{declined['payment_id']}/refunds", {}, headers={"Idempotency-Key": "r2"})
    assert_error(refused, 400, "invalid_request_error", "amount")
    missing = invoke("POST", "/payments/pay_000000000000000000000000/refunds", {}, headers={"Idempotency-Key": "r3"})
    assert_error(missing, 404, "invalid_request_error")


# --- bad input: 4xx, never 5xx, nothing written ---------------------------------------------


def test_invalid_payments_are_400_naming_the_field_and_write_nothing(aws_env, sandbox):
    def refused_naming_the_field(case: tuple[int, tuple[dict, str]]) -> bool:
        n, (body, param) = case
        try:
            error = assert_error(pay(body, key=f"bad-{n}"), 400, "invalid_request_error")
        except AssertionError:
            return False
        named = error["param"] == param or error["param"].startswith(param)
        return named and stored_items(aws_env) == 0 and sandbox.charges() == []

    claim = "not a documented 400 naming the field, or something was written or charged"
    assert_holds_for_each(enumerate(BAD_PAYMENTS), refused_naming_the_field, claim)


def test_transport_errors(aws_env):
    body = {"amount": 100, "currency": "usd", "source": {"token": "tok_x"}}
    assert_error(
        invoke("POST", "/payments", raw_body="{not json", headers={"Idempotency-Key": "k"}),
        400,
        "invalid_request_error",
    )
    assert_error(
        invoke("POST", "/payments", raw_body="[1, 2]", headers={"Idempotency-Key": "k"}), 400, "invalid_request_error"
    )
    huge = json.dumps({**body, "description": "x" * 40_000})
    assert_error(
        invoke("POST", "/payments", raw_body=huge, headers={"Idempotency-Key": "k"}), 413, "invalid_request_error"
    )
    text = invoke(
        "POST", "/payments", raw_body="amount=100", headers={"Idempotency-Key": "k", "Content-Type": "text/plain"}
    )
    assert_error(text, 415, "invalid_request_error")
    assert_error(invoke("POST", "/payments", body), 400, "invalid_request_error", "Idempotency-Key")
    assert_error(
        invoke("POST", "/payments", body, headers={"Idempotency-Key": "x" * 256}),
        400,
        "invalid_request_error",
        "Idempotency-Key",
    )
    assert_error(
        invoke("POST", "/payments/pay_1/refunds", {"amount": 1}), 400, "invalid_request_error", "Idempotency-Key"
    )
    assert stored_items(aws_env) == 0


def test_errors_never_echo_a_card_number(aws_env):
    response = pay({"amount": 100, "currency": "usd", "source": {"card": card("4242424242424241")}})
    assert "424242424242424" not in response["body"]
