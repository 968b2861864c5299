"""Merchants: who acts for which tenant, and isolation by construction. Through the real handlers on moto:
another merchant's ids behave exactly like unknown ids, keys are the merchant's own, and a principal that acts
for no merchant is refused before anything is read or written."""

import json

import boto3
import pytest

from lambdas.adapters.dynamo import to_item
from lambdas.adapters.merchants import DynamoMerchantDirectory
from lambdas.domain.merchants import Caller, acting_principal, lookup_keys, principal_key
from lambdas.storage_schema import merchant_items
from tests.service_fixtures import REGION
from tests.support.api import assert_error, card, pay, stored_items, tokenize
from tests.support.cases import assert_holds_for_each
from tests.support.events import body_of, invoke
from tests.support.fakes import MERCHANT_A, MERCHANT_B

SESSION_OF_B = MERCHANT_B.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/")
UNMAPPED = "arn:aws:iam::123456789012:user/nobody"
OTHER_ACCOUNT = "arn:aws:iam::210987654321:user/local"

# --- the caller -------------------------------------------------------------------


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_an_assumed_role_session_acts_as_its_role(partition):
    session = f"arn:{partition}:sts::123456789012:assumed-role/checkout-service/i-0abc123@task.7"
    assert acting_principal(session) == f"arn:{partition}:iam::123456789012:role/checkout-service"


@pytest.mark.parametrize(
    ("principal", "acting"),
    [
        ("arn:aws:iam::123456789012:role/teams/payments/checkout", "arn:aws:iam::123456789012:role/checkout"),
        ("arn:aws:iam::123456789012:user/ops/alice", "arn:aws:iam::123456789012:user/alice"),
    ],
)
def test_roles_and_users_are_known_without_their_path(principal, acting):
    assert acting_principal(principal) == acting


@pytest.mark.parametrize(
    "principal", ["123456789012", "arn:aws:iam::123456789012:root", "arn:aws:sts::123456789012:federated-user/bob"]
)
def test_other_principals_are_themselves(principal):
    assert acting_principal(principal) == principal


@pytest.mark.parametrize(
    "spelling",
    [
        "arn:aws:iam::123456789012:role/Checkout-Service",
        "arn:aws:iam::123456789012:role/teams/CHECKOUT-SERVICE",
        "arn:aws:sts::123456789012:assumed-role/checkout-SERVICE/i-0abc123",
    ],
)
def test_a_role_is_known_by_its_name_in_any_case_as_iam_knows_it(spelling):
    """IAM names are unique whatever their case, so every spelling (and every session) is the one role."""
    assert principal_key(spelling) == principal_key("arn:aws:iam::123456789012:role/checkout-service")
    assert principal_key(spelling) != principal_key("arn:aws:iam::123456789012:user/checkout-service")
    assert principal_key(spelling) != principal_key("arn:aws:iam::210987654321:role/checkout-service")
    assert lookup_keys(Caller(spelling, "123456789012"))[0] == principal_key(spelling)


def test_a_caller_is_looked_up_as_its_principal_then_its_account():
    caller = Caller(f"{SESSION_OF_B}/task-1", "123456789012")
    assert lookup_keys(caller) == (MERCHANT_B, "123456789012")
    assert lookup_keys(Caller("", "")) == ()


# --- the directory: items Terraform writes, read with a cache ------------------------


@pytest.fixture
def directory(moto_resources):
    table = moto_resources["MERCHANTS_TABLE"]
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for item in merchant_items("whole-account", ["210987654321"], {"velocity_per_hour": 3}):
        dynamodb.put_item(TableName=table, Item=to_item(item))
    for item in merchant_items("one-role", ["arn:aws:iam::210987654321:role/path/checkout"], {}):
        dynamodb.put_item(TableName=table, Item=to_item(item))
    now = [0.0]
    return DynamoMerchantDirectory(dynamodb, table, max_age=60, clock=lambda: now[0]), dynamodb, table, now


def test_a_named_role_wins_over_its_whole_account(directory):
    merchants, *_ = directory
    session = "arn:aws:sts::210987654321:assumed-role/checkout/i-1"
    assert merchants.merchant_for(Caller(session, "210987654321")).id == "one-role"
    by_account = merchants.merchant_for(Caller("arn:aws:iam::210987654321:user/ops", "210987654321"))
    assert by_account.id == "whole-account" and by_account.rules.velocity_per_hour == 3
    assert merchants.merchant_for(Caller(UNMAPPED, "123456789012")) is None
    assert merchants.merchant_for(Caller("", "")) is None


@pytest.mark.parametrize(
    "caller",
    ["arn:aws:sts::210987654321:assumed-role/CheckOut/i-1", "arn:aws:iam::210987654321:role/other/CHECKOUT"],
)
def test_a_role_spelled_in_another_case_maps_to_its_merchant_not_to_its_account(directory, caller):
    merchants, dynamodb, table, _ = directory
    for item in merchant_items("upper", ["arn:aws:iam::123456789012:user/Billing"], {}):
        dynamodb.put_item(TableName=table, Item=to_item(item))
    assert merchants.merchant_for(Caller(caller, "210987654321")).id == "one-role"
    assert merchants.merchant_for(Caller("arn:aws:iam::123456789012:user/BILLING", "123456789012")).id == "upper"


def test_every_merchant_is_listed_for_the_scheduled_jobs(directory):
    merchants, *_ = directory
    assert [m.id for m in merchants.merchants()] == ["merchant-a", "merchant-b", "one-role", "whole-account"]


def test_a_configuration_change_reaches_a_container_once_its_cache_expires(directory):
    merchants, dynamodb, table, now = directory
    caller = Caller(UNMAPPED, "123456789012")
    assert merchants.merchant_for(caller) is None
    for item in merchant_items("late", [UNMAPPED], {}):
        dynamodb.put_item(TableName=table, Item=to_item(item))
    now[0] = 59.0
    assert merchants.merchant_for(caller) is None  # the refusal is cached too: no read per refused request
    now[0] = 61.0
    assert merchants.merchant_for(caller).id == "late"


def test_the_cache_keeps_at_most_its_size_and_drops_the_oldest(moto_resources):
    table = moto_resources["MERCHANTS_TABLE"]
    merchants = DynamoMerchantDirectory(boto3.client("dynamodb", region_name=REGION), table, max_entries=3)
    for n in range(10):  # federated sessions, say: every one a new principal
        assert merchants.merchant_for(Caller(f"arn:aws:iam::123456789012:user/visitor-{n}", "")) is None
    assert len(merchants._cache) == 3
    assert merchants.merchant_for(Caller(MERCHANT_A, "123456789012")).id == "merchant-a"
    assert len(merchants._cache) == 3 and "PRINCIPAL#arn:aws:iam::123456789012:user/visitor-9" in merchants._cache


# --- isolation through the handlers ----------------------------------------------------


def paid_by_a(aws_env) -> dict:
    response = pay({"amount": 1500, "currency": "usd", "source": {"token": tokenize()}}, key="a-1")
    assert response["statusCode"] == 201
    return body_of(response)


def same_but_request_id(first: dict, second: dict) -> bool:
    strip = lambda r: {**r, "body": {**body_of(r), "error": {**body_of(r)["error"], "request_id": None}}}  # noqa: E731
    return strip(first) == strip(second)


@pytest.mark.parametrize("path", ["/payments/{id}", "/payments/{id}/ledger"])
def test_another_merchants_payment_reads_exactly_as_an_unknown_one(aws_env, sandbox, path):
    payment = paid_by_a(aws_env)
    assert invoke("GET", path.format(id=payment["id"]))["statusCode"] == 200
    theirs = invoke("GET", path.format(id=payment["id"]), caller=MERCHANT_B)
    unknown = invoke("GET", path.format(id="pay_" + "0" * 24), caller=MERCHANT_B)
    assert_error(theirs, 404, "invalid_request_error")
    assert same_but_request_id(theirs, unknown)


def test_another_merchant_cannot_refund_a_payment(aws_env, sandbox):
    payment = paid_by_a(aws_env)
    path = f"/payments/{payment['id']}/refunds"
    theirs = invoke("POST", path, {"amount": 100}, headers={"Idempotency-Key": "r"}, caller=MERCHANT_B)
    assert_error(theirs, 404, "invalid_request_error")
    assert sandbox.refunds() == []
    assert body_of(invoke("GET", f"/payments/{payment['id']}"))["amount_refunded"] == 0


def test_another_merchants_token_is_an_unknown_token(aws_env, sandbox):
    token = tokenize()
    response = pay({"amount": 300, "currency": "usd", "source": {"token": token}}, caller=MERCHANT_B)
    error = assert_error(response, 400, "invalid_request_error", "source.token")
    assert error["code"] == "token_not_found" and sandbox.charges() == []


def test_one_idempotency_key_from_two_merchants_makes_two_payments(aws_env, sandbox):
    body = {"amount": 400, "currency": "usd", "source": {"card": card()}}
    first, second = pay(body, key="shared"), pay(body, key="shared", caller=MERCHANT_B)
    assert first["statusCode"] == second["statusCode"] == 201
    assert "Idempotent-Replayed" not in second["headers"]
    assert body_of(first)["id"] != body_of(second)["id"] and len(sandbox.charges()) == 2


def test_two_sessions_of_one_role_are_one_caller(aws_env, sandbox):
    body = {"amount": 700, "currency": "usd", "source": {"card": card()}}
    first = pay(body, key="shared", caller=f"{SESSION_OF_B}/task-1")
    again = pay(body, key="shared", caller=f"{SESSION_OF_B}/task-2")
    assert first["statusCode"] == 201 and again["headers"].get("Idempotent-Replayed") == "true"
    assert body_of(again) == body_of(first) and len(sandbox.charges()) == 1


def test_a_principal_acting_for_no_merchant_is_refused_and_nothing_is_written(aws_env, sandbox):
    calls = [
        ("POST", "/tokens", {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}),
        ("POST", "/payments", {"amount": 100, "currency": "usd", "source": {"card": card()}}),
        ("POST", "/payments/pay_1/refunds", {"amount": 1}),
        ("GET", "/payments/pay_1", None),
    ]

    def refused(case: tuple[str, tuple[str, str, dict | None]]) -> bool:
        caller, (method, path, body) = case
        response = invoke(method, path, body, headers={"Idempotency-Key": "k"}, caller=caller)
        try:
            assert_error(response, 403, "permission_error")
        except AssertionError:
            return False
        return stored_items(aws_env) == 0 and sandbox.charges() == []

    cases = [(caller, request) for caller in (UNMAPPED, OTHER_ACCOUNT, "") for request in calls]
    assert_holds_for_each(cases, refused, "not a 403, or something was written or charged")


def test_a_refused_principal_learns_nothing_from_a_bad_body(aws_env, sandbox):
    response = invoke("POST", "/payments", raw_body='{"amount": ', headers={"Idempotency-Key": "k"}, caller=UNMAPPED)
    assert_error(response, 403, "permission_error")


def test_each_merchant_pays_by_its_own_rules(aws_env, sandbox):
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    capped = merchant_items("merchant-b", [MERCHANT_B], {"max_amount": {"USD": 500}})[0]
    dynamodb.put_item(TableName=aws_env["MERCHANTS_TABLE"], Item=to_item(capped))
    body = {"amount": 900, "currency": "usd", "source": {"card": card()}}
    assert pay(body, key="a")["statusCode"] == 201
    declined = pay(body, key="b", caller=MERCHANT_B)
    assert declined["statusCode"] == 402 and body_of(declined)["error"]["decline_code"] == "rule_blocked"
    assert json.loads(capped["rules"]) == {"max_amount": {"USD": 500}}


def test_a_request_carrying_another_merchants_api_key_is_refused_and_nothing_is_written(aws_env, sandbox):
    """A merchant's API key puts a request in that merchant's usage plan: the signer's merchant must be the key's
    (its id in the merchant's item, as API Gateway reports it in the event), else 403 before anything is read."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for merchant, principal in (("merchant-a", MERCHANT_A), ("merchant-b", MERCHANT_B)):
        item = merchant_items(merchant, [principal], {}, api_key_id=f"{merchant}-key-id")[0]
        dynamodb.put_item(TableName=aws_env["MERCHANTS_TABLE"], Item=to_item(item))
    body = {"amount": 900, "currency": "usd", "source": {"card": card()}}
    for api_key_id in ("merchant-b-key-id", None):
        refused = pay(body, key="a", caller=MERCHANT_A, api_key_id=api_key_id)
        assert assert_error(refused, 403, "permission_error")["code"] == "api_key_mismatch"
    assert stored_items(aws_env) == 0 and sandbox.charges() == []
    assert pay(body, key="a", caller=MERCHANT_A, api_key_id="merchant-a-key-id")["statusCode"] == 201
