"""Security properties of the synthesized stacks, one resource kind at a time."""

import json
import re

import pytest

from lambdas.domain.merchants import acting_principal
from lambdas.routes import IDEMPOTENCY_HEADER, MAX_BODY_BYTES, ROUTES, Function
from lambdas.storage_schema import IDEMPOTENCY, LEDGER
from stacks.api_policy import invoke_policy
from tests.support.policies import key_policy_statements


def _config(stack):
    return stack.environment


def _by_suffix(resources: dict, attribute: str, suffix: str) -> dict:
    (found,) = [r for r in resources.values() if r[attribute].endswith(suffix)]
    return found


# --- KMS ---------------------------------------------------------------------


def test_symmetric_keys_rotate_the_fingerprint_key_is_hmac_and_the_signing_key_ecc(stack):
    keys = {name.split("_")[0]: key for name, key in stack.resources("aws_kms_key").items()}
    assert set(keys) == {"vault", "fingerprint", "operations", "signing", "alarms", "checkpoint-archive"}
    for name in ("vault", "operations", "alarms", "checkpoint-archive"):
        assert keys[name]["customer_master_key_spec"] == "SYMMETRIC_DEFAULT"
        assert keys[name]["enable_key_rotation"] is True
    assert keys["fingerprint"]["customer_master_key_spec"] == "HMAC_256"
    assert keys["fingerprint"]["key_usage"] == "GENERATE_VERIFY_MAC"
    assert (keys["signing"]["customer_master_key_spec"], keys["signing"]["key_usage"]) == (
        "ECC_NIST_P256",
        "SIGN_VERIFY",
    )
    assert keys["signing"]["enable_key_rotation"] is False  # KMS rotates no asymmetric key
    for key in keys.values():
        assert key["is_enabled"] is True
        assert key["deletion_window_in_days"] == _config(stack).key_deletion_window_days
    aliases = sorted(alias["name"] for alias in stack.resources("aws_kms_alias").values())
    prefix = _config(stack).prefix
    names = ("alarms", "checkpoints", "fingerprint", "operations", "signing", "vault")
    assert aliases == [f"alias/{prefix}-{key}" for key in names]


def test_key_policies_name_their_users_and_bind_service_principals_to_the_account(stack):
    role_users = {}
    for name in stack.resources("aws_kms_key"):
        statements = key_policy_statements(stack, name)
        for statement in statements:
            for kind, identifiers in statement.principals:
                assert "*" not in identifiers, f"{statement.source}: wildcard principal"
                if kind == "Service" and identifiers[0].startswith("events."):
                    # SNS supports no aws:Source* condition for EventBridge on a topic's key: the topic policy binds
                    # the publishers (tests/test_monitoring.py), and the key serves only that topic.
                    assert name.startswith("alarms_key") and not statement.conditions, statement.source
                elif kind == "Service":
                    values = [v for _, _, vs in statement.conditions for v in vs]
                    assert any("${data.aws_caller_identity.caller.account_id}" in v for v in values), statement.source
                if identifiers[0].endswith(":root") and not statement.conditions:
                    # The account administers the key; using it takes a named grant or a service on its behalf.
                    uses = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateMac", "kms:Sign"}
                    assert not uses & set(statement.actions)
        role_users[name.split("_")[0]] = {
            identifier.split(".")[1].split("_")[0]
            for s in statements
            for kind, ids in s.principals
            for identifier in ids
            if identifier.startswith("${aws_iam_role.")
        }
    assert role_users == {
        "vault": {
            "tokenize",
            "charge",
            "refund",
            "capture",
            "read",
            "reconcile",
            "checkpoint",
            "webhooks",
            "deliver",
            "settle",
        },  # checkpoint, settle: the ledger table's; webhooks seals the endpoints' secrets, deliver opens them
        "fingerprint": {"tokenize", "charge"},
        # the scheduled functions' dead-letter queues, and the webhook events'
        "operations": {"reconcile", "checkpoint", "deliver", "settle"},
        "signing": {"checkpoint", "read"},  # signs; serves the public key
        "alarms": set(),  # CloudWatch and EventBridge publish to the alarm topic; no function uses it
        "checkpoint-archive": {"checkpoint"},  # keeps each checkpoint in the write-once bucket, through S3
    }


def test_log_key_admits_cloudwatch_logs_only_for_this_accounts_log_groups(dev):
    (name,) = [n for n in dev.resources("aws_kms_key") if n.startswith("operations")]
    (logs,) = [s for s in key_policy_statements(dev, name) if s.principals[0][1][0].startswith("logs.")]
    (partition,) = dev.data("aws_partition")
    assert logs.principals == (("Service", (f"logs.us-east-1.${{data.aws_partition.{partition}.dns_suffix}}",)),)
    assert logs.conditions[0][:2] == ("ArnLike", "kms:EncryptionContext:aws:logs:arn")


# --- DynamoDB ----------------------------------------------------------------


def test_tables_follow_the_shared_schema(stack):
    tables = stack.resources("aws_dynamodb_table")
    for schema in (LEDGER, IDEMPOTENCY):
        table = _by_suffix(tables, "name", f"-{schema.name}")
        assert table["hash_key"] == schema.partition_key
        assert table.get("range_key") == schema.sort_key
        assert {a["name"] for a in table["attribute"]} == set(schema.key_attributes)
        indexes = {i["name"]: (i["hash_key"], i["range_key"]) for i in table.get("global_secondary_index", [])}
        assert indexes == {i.name: (i.partition_key, i.sort_key) for i in schema.indexes}
        expected_ttl = {"attribute_name": schema.ttl_attribute, "enabled": True} if schema.ttl_attribute else None
        assert table.get("ttl") == expected_ttl


def test_tables_are_on_demand_encrypted_with_the_vault_key_and_recoverable(stack):
    for table in stack.resources("aws_dynamodb_table").values():
        assert table["billing_mode"] == "PAY_PER_REQUEST"
        assert table["server_side_encryption"]["enabled"] is True
        assert table["server_side_encryption"]["kms_key_arn"].startswith("${aws_kms_key.vault_key_")
        assert table["point_in_time_recovery"] == {"enabled": True}
        assert table["deletion_protection_enabled"] is _config(stack).deletion_protection


def test_production_tables_cannot_be_deleted_and_dev_tables_can(synthesized):
    assert all(t["deletion_protection_enabled"] for t in synthesized["prod"].resources("aws_dynamodb_table").values())
    assert not any(
        t["deletion_protection_enabled"] for t in synthesized["dev"].resources("aws_dynamodb_table").values()
    )


# --- API Gateway and WAF -------------------------------------------------------


def _paths_by_resource(stack) -> dict[str, str]:
    """Terraform reference of each API resource's id -> its full path."""
    resources = stack.resources("aws_api_gateway_resource")
    (api_name,) = stack.resources("aws_api_gateway_rest_api")
    paths = {f"${{aws_api_gateway_rest_api.{api_name}.root_resource_id}}": ""}
    while len(paths) <= len(resources):
        for name, resource in resources.items():
            if resource["parent_id"] in paths:
                paths[f"${{aws_api_gateway_resource.{name}.id}}"] = (
                    f"{paths[resource['parent_id']]}/{resource['path_part']}"
                )
    return paths


def test_api_serves_exactly_the_contract_routes_with_iam_auth_and_validation(stack):
    paths = _paths_by_resource(stack)
    methods = stack.resources("aws_api_gateway_method").values()
    served = {(m["http_method"], paths[m["resource_id"]]) for m in methods}
    assert served == {(route.method, route.path) for route in ROUTES}
    for method in methods:
        assert method["authorization"] == "AWS_IAM"
        assert method["request_validator_id"].startswith("${aws_api_gateway_request_validator.")
        route = next(r for r in ROUTES if (r.method, r.path) == (method["http_method"], paths[method["resource_id"]]))
        header = f"method.request.header.{IDEMPOTENCY_HEADER}"
        assert method.get("request_parameters", {}).get(header, False) is route.idempotent


def test_every_route_reaches_its_function_through_a_proxy_integration(stack):
    functions = stack.resources("aws_lambda_function")
    for integration in stack.resources("aws_api_gateway_integration").values():
        assert integration["type"] == "AWS_PROXY"
        function_name = integration["uri"].split(".")[1]
        assert function_name in functions
    (apigateway,) = [n for n, d in stack.data("aws_service_principal").items() if d["service_name"] == "apigateway"]
    permissions = [
        p
        for p in stack.resources("aws_lambda_permission").values()
        if p["principal"] == f"${{data.aws_service_principal.{apigateway}.name}}"
    ]
    assert len(permissions) == len(ROUTES)
    for permission in permissions:
        assert permission["source_arn"].startswith("${aws_api_gateway_rest_api.")


def test_stage_traces_logs_encrypted_and_throttles_without_data_trace(stack):
    (stage,) = stack.resources("aws_api_gateway_stage").values()
    assert stage["stage_name"] == "v1"
    assert stage["xray_tracing_enabled"] is True
    log_group_name = stage["access_log_settings"]["destination_arn"].split(".")[1]
    log_group = stack.resources("aws_cloudwatch_log_group")[log_group_name]
    assert log_group["kms_key_id"].startswith("${aws_kms_key.operations_key_")
    access_log = json.loads(stage["access_log_settings"]["format"])
    assert access_log["requestId"] == "$context.requestId"
    (settings,) = stack.resources("aws_api_gateway_method_settings").values()
    assert settings["method_path"] == "*/*"
    s = settings["settings"]
    assert s["data_trace_enabled"] is False
    assert s["logging_level"] == "INFO"
    assert s["throttling_rate_limit"] == _config(stack).throttling.rate_limit
    assert s["throttling_burst_limit"] == _config(stack).throttling.burst_limit


def test_web_acl_guards_the_stage_with_managed_rules_and_logs(stack):
    ((acl_name, acl),) = stack.resources("aws_wafv2_web_acl").items()
    assert acl["scope"] == "REGIONAL"
    rules = [r for r in acl["rule"] if "managed_rule_group_statement" in r["statement"]]  # and the body's (below)
    managed = {r["statement"]["managed_rule_group_statement"]["name"]: r["statement"]["managed_rule_group_statement"]
               for r in rules}  # fmt: skip
    assert set(managed) == {
        "AWSManagedRulesAmazonIpReputationList",
        "AWSManagedRulesAnonymousIpList",  # CKV2_AWS_77
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
    }
    counted = {name: {o["name"] for o in group.get("rule_action_override", ()) if o["action_to_use"] == {"count": {}}}
               for name, group in managed.items()}  # fmt: skip
    # Merchants' back ends call from hosting providers; anonymizing proxies stay blocked.
    assert counted["AWSManagedRulesAnonymousIpList"] == {"HostingProviderIPList"}
    assert counted["AWSManagedRulesCommonRuleSet"] == {"SizeRestrictions_BODY"}  # 8 KB: below the contract's 32 KiB
    assert all(rule["override_action"] == {"none": {}} for rule in rules)
    (association,) = stack.resources("aws_wafv2_web_acl_association").values()
    assert association["resource_arn"].startswith("${aws_api_gateway_stage.")
    assert association["web_acl_arn"] == f"${{aws_wafv2_web_acl.{acl_name}.arn}}"
    (logging,) = stack.resources("aws_wafv2_web_acl_logging_configuration").values()
    waf_group = stack.resources("aws_cloudwatch_log_group")[logging["log_destination_configs"][0].split(".")[1]]
    assert waf_group["name"].startswith("aws-waf-logs-")


def test_gateway_errors_use_the_contract_error_shape(stack):
    responses = stack.resources("aws_api_gateway_gateway_response").values()
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "BAD_REQUEST_PARAMETERS"} <= {r["response_type"] for r in responses}
    for response in responses:
        template = response["response_templates"]["application/json"]
        assert template.startswith('{"error":{"type":"')
        assert '"request_id":"$context.requestId"' in template


@pytest.mark.parametrize("response_type", ["MISSING_AUTHENTICATION_TOKEN", "INVALID_SIGNATURE", "EXPIRED_TOKEN",
                                           "ACCESS_DENIED"])  # fmt: skip
def test_unsigned_badly_signed_and_refused_callers_get_the_contracts_403(stack, response_type):
    (response,) = [
        r for r in stack.resources("aws_api_gateway_gateway_response").values() if r["response_type"] == response_type
    ]
    assert response["status_code"] == "403"
    assert response["response_templates"]["application/json"].startswith('{"error":{"type":"permission_error"')


def test_gateway_responses_answer_a_fixed_message_and_quote_nothing_of_the_request(stack):
    """API Gateway's ``$context.error.messageString`` quotes the request: INVALID_SIGNATURE's the canonical request
    (method, path, query), ACCESS_DENIED's the resource ARN with its path, an incomplete signature's the
    Authorization header. A badly signed ``GET /v1/payments/4242424242424242`` would echo the card number. So every
    response answers the contract's error with a fixed message and refers to nothing of the request but its id;
    types the API configures no response for (UNAUTHORIZED: it has no authorizer) get DEFAULT_4XX's, fixed too."""
    from stacks.payment_api import GATEWAY_RESPONSES

    responses = {r["response_type"]: r for r in stack.resources("aws_api_gateway_gateway_response").values()}
    assert set(responses) == set(GATEWAY_RESPONSES)
    assert {"MISSING_AUTHENTICATION_TOKEN", "INVALID_SIGNATURE", "EXPIRED_TOKEN", "ACCESS_DENIED", "DEFAULT_4XX",
            "DEFAULT_5XX"} <= set(responses)  # fmt: skip
    for response_type, (status, error_type, code, param) in GATEWAY_RESPONSES.items():
        response = responses[response_type]
        template = response["response_templates"]["application/json"]
        assert re.findall(r"\$!?\{?[\w.]+", template) == ["$context.requestId"], f"{response_type}: {template}"
        error = json.loads(template)["error"]
        assert error.pop("request_id") == "$context.requestId"
        assert error.pop("message").endswith("."), response_type  # a sentence for people
        assert error == {"type": error_type, "code": code} | ({"param": param} if param else {}), response_type
        assert response.get("status_code") == (str(status) if status else None)


def test_the_api_lets_only_the_configured_principals_invoke_it(stack):
    (api,) = stack.resources("aws_api_gateway_rest_api")
    (policy,) = stack.resources("aws_api_gateway_rest_api_policy").values()
    assert policy["rest_api_id"] == f"${{aws_api_gateway_rest_api.{api}.id}}"
    allow, deny = json.loads(policy["policy"])["Statement"]
    principals = [p for merchant in _config(stack).merchants for p in merchant.principals]
    arns, accounts = {p for p in principals if not p.isdigit()}, {p for p in principals if p.isdigit()}
    assert allow["Effect"] == "Allow" and allow["Action"] == deny["Action"] == "execute-api:Invoke"
    assert set(allow["Principal"]["AWS"]) == accounts | {arn.split(":")[4] for arn in arns}
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Resource"] == allow["Resource"]
    patterns = deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert all(acting_principal(arn) in patterns for arn in arns)  # a role's path is matched as any path
    assert set(deny["Condition"].get("StringNotEquals", {}).get("aws:PrincipalAccount", ())) == accounts
    (deployment,) = stack.resources("aws_api_gateway_deployment").values()
    assert "policy" in deployment["triggers"]  # a changed policy is deployed, not only saved


def test_a_role_is_let_in_with_any_path_as_the_functions_know_it():
    (_, deny) = invoke_policy(("arn:aws:iam::111122223333:role/teams/checkout",))["Statement"]
    assert deny["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": [
        "arn:aws:iam::111122223333:role/checkout", "arn:aws:iam::111122223333:role/*/checkout"]}}  # fmt: skip


def test_a_policy_naming_every_principal_past_the_quota_names_their_accounts_and_too_many_accounts_fail():
    many_roles = tuple(f"arn:aws:iam::{100000000000 + n % 3}:role/checkout-{n}" for n in range(400))
    (_, deny) = invoke_policy(many_roles)["Statement"]
    assert deny["Condition"]["StringNotEquals"] == {"aws:PrincipalAccount": ["100000000000", "100000000001",
                                                                             "100000000002"]}  # fmt: skip
    thousand_accounts = tuple(str(100000000000 + n) for n in range(1000))
    with pytest.raises(ValueError, match="accounts do not fit API Gateway's 8192-character resource policy"):
        invoke_policy(thousand_accounts)
    raised = 40_000  # the quota is adjustable: once AWS raised it, the operator's configuration says so
    policy = invoke_policy(thousand_accounts, raised)
    assert 8192 < len(json.dumps(policy)) <= raised
    assert len(policy["Statement"][1]["Condition"]["StringNotEquals"]["aws:PrincipalAccount"]) == 1000


# --- Lambda, logs and secrets --------------------------------------------------


def test_functions_trace_reserve_concurrency_and_encrypt_their_environment(stack):
    settings = _config(stack).functions
    for function in stack.resources("aws_lambda_function").values():
        assert function["tracing_config"] == {"mode": "Active"}
        assert function.get("reserved_concurrent_executions") == settings.reserved_concurrency
        assert function["kms_key_arn"].startswith("${aws_kms_key.operations_key_")
        assert function["runtime"] == settings.runtime and function["architectures"] == [settings.architecture]
        variables = function["environment"]["variables"]
        assert variables["GATEWAY_SECRET_ID"].startswith("${aws_secretsmanager_secret.")
        assert not any("secret_string" in value or "secret_key" in value.lower() for value in variables.values())


def test_reconciliation_checkpoints_deliveries_and_settlements_run_on_a_schedule_with_encrypted_dead_letters(stack):
    rules = {
        f"${{aws_cloudwatch_event_rule.{n}.name}}": r for n, r in stack.resources("aws_cloudwatch_event_rule").items()
    }
    functions = stack.resources("aws_lambda_function")
    queues = stack.resources("aws_sqs_queue")
    scheduled = {}
    for target in stack.resources("aws_cloudwatch_event_target").values():
        if "schedule_expression" not in rules[target["rule"]]:
            continue  # a key administration rule, to an alarm topic (tests/test_monitoring.py)
        function = functions[target["arn"].split(".")[1]]
        every = {Function.DELIVER.handler: "rate(1 minute)", Function.SETTLE.handler: "rate(1 hour)"}
        assert rules[target["rule"]]["schedule_expression"] == every.get(function["handler"], "rate(5 minutes)")
        queue_name = function["dead_letter_config"]["target_arn"].split(".")[1]
        assert queues[queue_name]["kms_master_key_id"].startswith("${aws_kms_key.operations_key_")
        scheduled[function["handler"]] = function
    scheduled_functions = (Function.RECONCILE, Function.CHECKPOINT, Function.DELIVER, Function.SETTLE)
    assert set(scheduled) == {function.handler for function in scheduled_functions}
    # and the queue of webhook events never delivered, encrypted with the same key
    webhook_queue = _by_suffix(queues, "name", "-webhook-dead-letters")
    assert webhook_queue["kms_master_key_id"].startswith("${aws_kms_key.operations_key_")
    assert len(queues) == 5
    for function in functions.values():
        if function["handler"] not in scheduled:
            assert "dead_letter_config" not in function  # invoked synchronously by API Gateway


def test_functions_get_the_merchants_table_and_gateway_settings_from_the_config(stack):
    """Rules are per merchant, in the merchants table (tests/test_constructs.py), not in the environment."""
    for function in stack.resources("aws_lambda_function").values():
        variables = function["environment"]["variables"]
        assert variables["MERCHANTS_TABLE"].startswith("${aws_dynamodb_table.") and "PAYMENT_RULES" not in variables
        assert variables["GATEWAY_BASE_URL"] == str(_config(stack).gateway_base_url)


def test_log_groups_are_encrypted_and_kept_at_least_a_year(stack):
    groups = stack.resources("aws_cloudwatch_log_group").values()
    names = {group["name"] for group in groups}
    assert {f"/aws/lambda/{_config(stack).prefix}-{f.value}" for f in Function} <= names
    for group in groups:
        assert group["retention_in_days"] >= 365
        assert group["kms_key_id"].startswith("${aws_kms_key.operations_key_")


def test_gateway_secret_value_is_never_in_terraform(stack):
    (secret,) = stack.resources("aws_secretsmanager_secret").values()
    assert secret["kms_key_id"].startswith("${aws_kms_key.vault_key_")
    assert not stack.resources("aws_secretsmanager_secret_version")
    outputs = json.dumps(stack.config["output"])
    assert "secret_string" not in outputs


def test_provider_takes_credentials_from_the_environment_and_endpoints_from_a_variable(stack):
    (provider,) = stack.config["provider"]["aws"]
    assert not {"access_key", "secret_key", "token", "profile"} & set(provider)
    (endpoints,) = provider["endpoints"]
    assert set(endpoints.values()) == {"${var.aws_endpoint_url}"}
    assert stack.config["variable"]["aws_endpoint_url"]["default"] == ""


# Blocks whose presence is all they say: they take no arguments, so Terraform's JSON writes them as ``{}`` (a rule's
# ``block``/``allow``/``count`` action, the default action's ``allow``, a rule group's override ``none``).
PRESENCE_BLOCKS = {"aws_wafv2_web_acl": frozenset({"allow", "block", "captcha", "challenge", "count", "none"})}


def _empty_blocks(config: dict) -> list[str]:
    """Paths of every ``{}`` in the resources and data sources, under a key or in a list: what a struct jsii dropped
    (a raw dict where a struct was expected, or one with misspelled keys) synthesizes as. No map in the stacks is
    meant to be empty (no ``tags = {}``); a block is exempt only if its resource type lists it in PRESENCE_BLOCKS."""
    found = []

    def walk(node, path: str, presence: frozenset[str]) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            at = f"{path}.{key}" if isinstance(node, dict) else f"{path}[{key}]"
            if value == {} and not (isinstance(node, dict) and key in presence):
                found.append(at)
            walk(value, at, presence)

    for section in ("resource", "data"):
        for resource_type, resources in config.get(section, {}).items():
            for name, body in resources.items():
                arguments = {key: value for key, value in body.items() if key != "//"}  # cdktf's metadata
                walk(arguments, f"{section}.{resource_type}.{name}", PRESENCE_BLOCKS.get(resource_type, frozenset()))
    return found


def test_the_empty_block_check_finds_a_dropped_struct_under_a_key_as_in_a_list():
    config = {
        "resource": {
            "aws_thing": {"t": {"some_block": {}, "blocks": [{}], "nested": {"inner": {}}, "set": {"a": 1}}},
            "aws_wafv2_web_acl": {"acl": {"default_action": {"allow": {}}, "visibility_config": {}}},
        },
        "data": {"aws_other": {"o": {"//": {}, "filter": {"none": {}}}}},
    }
    assert _empty_blocks(config) == [
        "resource.aws_thing.t.some_block",
        "resource.aws_thing.t.blocks[0]",
        "resource.aws_thing.t.nested.inner",
        "resource.aws_wafv2_web_acl.acl.visibility_config",
        "data.aws_other.o.filter.none",  # an exempt name, but not in a WAF resource
    ]


def test_no_block_synthesizes_empty(stack):
    assert _empty_blocks(stack.config) == []


def test_every_refusal_in_front_of_the_functions_but_an_uninspectable_body_carries_a_request_id(stack):
    """A WAF custom response would take precedence over API Gateway's and cannot carry the request id: the managed
    rules block plainly, and their WAF_FILTERED gateway response, like API Gateway's own 413 (over 10 MB), answers the
    contract. The custom responses are the 413 for a body WAF cannot inspect whole (below) and the 400 for an
    idempotency key the signature does not cover (tests/test_merchant_boundary.py)."""
    (acl,) = stack.resources("aws_wafv2_web_acl").values()
    assert [body["key"] for body in acl["custom_response_body"]] == ["body_too_large", "idempotency_key_unsigned"]
    managed = [rule for rule in acl["rule"] if "managed_rule_group_statement" in rule["statement"]]
    assert len(managed) == len(acl["rule"]) - 2
    assert all("action" not in rule for rule in managed)  # rule groups' own block actions, no custom response
    assert acl["default_action"] == {"allow": {}}
    responses = {r["response_type"]: r for r in stack.resources("aws_api_gateway_gateway_response").values()}
    for response_type, status in (("WAF_FILTERED", "403"), ("REQUEST_TOO_LARGE", "413")):
        assert responses[response_type]["status_code"] == status
        assert '"request_id":"$context.requestId"' in responses[response_type]["response_templates"]["application/json"]


def test_a_body_waf_cannot_inspect_whole_is_the_contracts_413_from_the_waf(stack):
    """API Gateway takes a body up to 10 MB, Lambda an invocation up to 6 MB: a body in between never reaches the
    function's 413 (API Gateway answers in its own shape). WAF sees only the first KB_64 of a body; a body longer
    than that matches the size rule whatever its length (oversize handling MATCH) and is refused with the contract's
    413, without a request id (a WAF response has none). Shorter bodies over 32 KiB get the function's 413."""
    (acl,) = stack.resources("aws_wafv2_web_acl").values()
    (rule,) = [rule for rule in acl["rule"] if "size_constraint_statement" in rule["statement"]]
    size = rule["statement"]["size_constraint_statement"]
    assert size["field_to_match"] == {"body": {"oversize_handling": "MATCH"}}
    (request_body,) = acl["association_config"]["request_body"]
    inspected = int(request_body["api_gateway"]["default_size_inspection_limit"].removeprefix("KB_")) * 1024
    # No body the function takes is refused, and every body WAF cannot see whole is.
    assert size["comparison_operator"] == "GT" and MAX_BODY_BYTES <= size["size"] <= inspected
    assert size["text_transformation"] == [{"priority": 0, "type": "NONE"}]
    too_large = {"response_code": 413, "custom_response_body_key": "body_too_large"}
    assert rule["action"] == {"block": {"custom_response": too_large}}
    assert rule["priority"] == max(r["priority"] for r in acl["rule"])  # a request a managed rule blocks gets its 403
    (body,) = [body for body in acl["custom_response_body"] if body["key"] == "body_too_large"]
    assert body["content_type"] == "APPLICATION_JSON"
    error = json.loads(body["content"])["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "body_too_large")
    assert "32 KiB" in error["message"]


def test_waf_inspects_more_of_a_body_than_the_limit(stack):
    (acl,) = stack.resources("aws_wafv2_web_acl").values()
    (request_body,) = acl["association_config"]["request_body"]
    limit_kib = int(request_body["api_gateway"]["default_size_inspection_limit"].removeprefix("KB_"))
    assert limit_kib * 1024 > MAX_BODY_BYTES


def _api_definitions(stack) -> dict[str, dict]:
    from stacks.payment_api import DEPLOYED_DEFINITIONS

    return {t: stack.resources(t) for t in DEPLOYED_DEFINITIONS if stack.resources(t)}


def test_the_deployments_trigger_digests_every_definition_the_api_serves(stack):
    """A REST API serves what it last deployed: the trigger is the digest of the synthesized definitions of all that a
    deployment captures, and the deployment waits for each."""
    from stacks.payment_api import DEPLOYED_DEFINITIONS, deployment_triggers

    (deployment,) = stack.resources("aws_api_gateway_deployment").values()
    definitions = _api_definitions(stack)
    assert {"aws_api_gateway_method", "aws_api_gateway_integration", "aws_api_gateway_request_validator",
            "aws_api_gateway_gateway_response", "aws_api_gateway_rest_api_policy"} <= set(definitions)  # fmt: skip
    assert deployment["triggers"] == deployment_triggers(definitions)
    assert set(deployment["depends_on"]) >= {
        f"{t}.{name}" for t, resources in definitions.items() for name in resources
    }
    # Every other API Gateway resource is outside what a deployment captures.
    outside = {f"aws_api_gateway_{kind}" for kind in ("deployment", "stage", "method_settings", "domain_name",
                                                      "base_path_mapping", "account", "usage_plan", "usage_plan_key",
                                                      "api_key")}  # fmt: skip
    api_types = {t for t in stack.config["resource"] if t.startswith("aws_api_gateway_")}
    assert api_types <= set(DEPLOYED_DEFINITIONS) | outside


@pytest.mark.parametrize(
    ("resource_type", "key", "value"),
    [
        ("aws_api_gateway_gateway_response", "status_code", "401"),
        ("aws_api_gateway_gateway_response", "response_templates", {"application/json": '{"message":"x"}'}),
        ("aws_api_gateway_request_validator", "validate_request_body", False),
        ("aws_api_gateway_integration", "type", "AWS"),
        ("aws_api_gateway_integration", "uri", "${aws_lambda_function.other.invoke_arn}"),
        ("aws_api_gateway_method", "authorization", "NONE"),
        ("aws_api_gateway_method", "request_parameters", {}),
        ("aws_api_gateway_rest_api_policy", "policy", "{}"),
        ("aws_api_gateway_resource", "path_part", "other"),
    ],
)
def test_changing_what_the_api_serves_changes_only_that_part_of_the_deployments_trigger(dev, resource_type, key, value):
    from stacks.payment_api import DEPLOYED_DEFINITIONS, deployment_triggers

    definitions = _api_definitions(dev)
    before = deployment_triggers(definitions)
    name = sorted(definitions[resource_type])[0]
    resources = definitions[resource_type] | {name: definitions[resource_type][name] | {key: value}}
    after = deployment_triggers(definitions | {resource_type: resources})
    assert {part for part in before if before[part] != after[part]} == {DEPLOYED_DEFINITIONS[resource_type]}


def test_adding_a_model_changes_the_deployments_trigger(dev):
    from stacks.payment_api import deployment_triggers

    definitions = _api_definitions(dev)
    model = {"name": "Charge", "content_type": "application/json", "schema": "{}", "rest_api_id": "${x.id}"}
    assert deployment_triggers(definitions | {"aws_api_gateway_model": {"charge": model}}) != deployment_triggers(
        definitions
    )


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def test_hosts_and_service_principals_follow_the_partition(stack):
    """No literal AWS host name: service principals come from aws_service_principal, endpoints and ARNs from
    aws_partition (dns_suffix, partition), so the stacks deploy to any partition."""
    literal = [text for text in _strings(stack.config.get("resource", {})) if ".amazonaws.com" in text]
    literal += [text for text in _strings(stack.config.get("data", {})) if ".amazonaws.com" in text]
    assert literal == []
    principals = {p["service_name"] for p in stack.data("aws_service_principal").values()}
    assert principals == {"lambda", "events", "apigateway"}
