"""The merchant boundary in the synthesized stack: each merchant's own rate in front of the functions (a usage plan
and an API key per merchant, every method requiring a key), API Gateway's 429 in the contract's shape with a
Retry-After, no API key value in the configuration or its outputs, and the WAF refusing an Idempotency-Key that the
SigV4 signature does not cover (API Gateway need not pass the Authorization header on to the function)."""

import json
import re

import requests
from botocore.credentials import Credentials

from client import SigV4
from lambdas.routes import IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_UNSIGNED
from lambdas.storage_schema import MerchantRecord


def only(stack, resource_type: str) -> tuple[str, dict]:
    ((name, body),) = stack.resources(resource_type).items()
    return name, body


def test_each_merchant_has_a_usage_plan_on_the_stage_at_its_own_rate_with_its_own_key(stack):
    config = stack.environment
    rates = {
        merchant.id: {
            "rate": config.merchant_rate(merchant).rate_limit,
            "burst": config.merchant_rate(merchant).burst_limit,
        }
        for merchant in config.merchants
    }
    keys_name, keys = only(stack, "aws_api_gateway_api_key")
    plans_name, plans = only(stack, "aws_api_gateway_usage_plan")
    _, plan_keys = only(stack, "aws_api_gateway_usage_plan_key")
    (stage,) = stack.resources("aws_api_gateway_stage")
    (api,) = stack.resources("aws_api_gateway_rest_api")
    assert keys["for_each"] == plans["for_each"] == plan_keys["for_each"] == rates
    assert plans["throttle_settings"] == {"rate_limit": "${each.value.rate}", "burst_limit": "${each.value.burst}"}
    assert plans["api_stages"] == [
        {"api_id": f"${{aws_api_gateway_rest_api.{api}.id}}", "stage": f"${{aws_api_gateway_stage.{stage}.stage_name}}"}
    ]
    assert (plan_keys["key_type"], plan_keys["key_id"], plan_keys["usage_plan_id"]) == (
        "API_KEY",
        f"${{aws_api_gateway_api_key.{keys_name}[each.key].id}}",
        f"${{aws_api_gateway_usage_plan.{plans_name}[each.key].id}}",
    )
    assert keys["enabled"] is True and keys["name"] == f"{config.prefix}-${{each.key}}"


def test_every_method_requires_a_merchants_api_key(stack):
    methods = stack.resources("aws_api_gateway_method").values()
    assert methods and all(method["api_key_required"] is True for method in methods)


def test_api_key_values_are_made_by_api_gateway_and_only_their_ids_are_output(stack):
    _, keys = only(stack, "aws_api_gateway_api_key")
    assert "value" not in keys
    output = stack.config["output"]["merchant_api_key_ids"]["value"]
    assert re.fullmatch(r"\$\{\{ for key, val in aws_api_gateway_api_key\.[\w-]+: key => val\.id \}\}", output)


def test_api_gateways_429_and_missing_key_answer_the_contracts_error_and_the_429_says_when_to_retry(stack):
    responses = {r["response_type"]: r for r in stack.resources("aws_api_gateway_gateway_response").values()}
    throttled, invalid_key = responses["THROTTLED"], responses["INVALID_API_KEY"]
    assert throttled["status_code"] == "429"
    assert json.loads(throttled["response_templates"]["application/json"])["error"]["type"] == "rate_limit_error"
    assert re.fullmatch(r"'[1-9][0-9]*'", throttled["response_parameters"]["gatewayresponse.header.Retry-After"])
    assert invalid_key["status_code"] == "403"
    assert json.loads(invalid_key["response_templates"]["application/json"])["error"]["type"] == "permission_error"


def test_each_merchants_item_names_its_own_api_key_by_id(stack):
    """The edge refuses a request whose API key is not its signer's merchant's: Terraform writes each merchant's key
    id (API Gateway makes it at apply) into the merchant's item in the merchants table, and into no other item."""
    from stacks.ledger_table import API_KEY_ID_PLACEHOLDER

    keys_name, _ = only(stack, "aws_api_gateway_api_key")
    (items,) = stack.resources("aws_dynamodb_table_item").values()
    written = {key: json.loads(item) for key, item in items["for_each"].items()}
    for merchant in stack.environment.merchants:
        item = written.pop(MerchantRecord.MERCHANT.key(merchant.id))
        assert item["api_key_id"] == {"S": API_KEY_ID_PLACEHOLDER}
    assert written and all("api_key_id" not in item for item in written.values())  # the principals' items
    key_ids = f"{{ for key, val in aws_api_gateway_api_key.{keys_name}: key => val.id }}"
    merchant = f'trimprefix(each.key, "{MerchantRecord.MERCHANT.value}")'
    assert items["item"] == (
        f'${{replace(each.value, "{API_KEY_ID_PLACEHOLDER}", '
        f'lookup({key_ids}, {merchant}, "{API_KEY_ID_PLACEHOLDER}"))}}'
    )


def authorization(headers: dict[str, str]) -> str:
    """The Authorization header the SDK's signer writes for a charge carrying ``headers``."""
    request = requests.Request("POST", "https://api.payments.internal/payments", json={}, headers=headers).prepare()
    SigV4(Credentials("AKIDEXAMPLE", "secret"), "us-east-1")(request)
    return request.headers["Authorization"]


def test_the_waf_refuses_an_idempotency_key_the_signature_does_not_cover_with_the_contracts_400(stack):
    (acl,) = stack.resources("aws_wafv2_web_acl").values()
    (rule,) = [rule for rule in acl["rule"] if rule["name"] == "idempotency-key-unsigned"]
    block = rule["action"]["block"]["custom_response"]
    (body,) = [body for body in acl["custom_response_body"] if body["key"] == block["custom_response_body_key"]]
    assert block["response_code"] == 400 and body["content_type"] == "APPLICATION_JSON"
    assert json.loads(body["content"])["error"] == {
        "type": "invalid_request_error",
        "code": "idempotency_key_unsigned",
        "message": IDEMPOTENCY_KEY_UNSIGNED,
        "param": IDEMPOTENCY_HEADER,
    }
    sent, unsigned = rule["statement"]["and_statement"]["statement"]
    assert sent["size_constraint_statement"]["field_to_match"] == {"single_header": {"name": "idempotency-key"}}
    assert sent["size_constraint_statement"]["comparison_operator"] == "GT"
    (signed,) = unsigned["not_statement"]["statement"]
    match = signed["regex_match_statement"]
    assert match["field_to_match"] == {"single_header": {"name": "authorization"}}
    assert match["text_transformation"] == [{"priority": 0, "type": "LOWERCASE"}]

    # What WAF matches, as WAF matches it (lower-cased): the SDK's signature covers the key; a key added after
    # signing, or a forged mention of it outside SignedHeaders, is not covered.
    def covered(header: str) -> bool:
        return re.search(match["regex_string"], header.lower()) is not None

    assert covered(authorization({IDEMPOTENCY_HEADER: "order-1"}))
    without_key = authorization({})
    assert not covered(without_key)
    assert not covered(without_key.replace("Signature=", "Signature=idempotency-key;"))
    assert not covered(without_key.replace("Credential=", "Credential=idempotency-key,"))
