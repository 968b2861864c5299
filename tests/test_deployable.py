"""What a real account needs that the emulator does not check: Terraform held to the configured account
and region, prod served only on a TLS 1.2 domain, a reachable gateway over https, and the account-wide API Gateway
logging role in a stack of its own, deployed once per account and region before the environments."""

import json
import re
from fnmatch import fnmatchcase

import pytest

from stacks.config import PLACEHOLDER_DOMAINS, RESOURCE_PREFIX
from tests.conftest import ENVIRONMENTS

PLACEHOLDER_HOST = re.compile(r"[\w.-]*\.(" + "|".join(re.escape(d) for d in PLACEHOLDER_DOMAINS) + r")\b")


def _stacks_of(synthesized, name):
    stack = synthesized[name]
    return stack, synthesized[stack.environment.account_stack_id]


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_every_stack_may_change_only_its_configured_account_in_its_region(synthesized, name):
    for stack in _stacks_of(synthesized, name):
        (provider,) = stack.config["provider"]["aws"]
        assert provider["allowed_account_ids"] == [stack.environment.account_id]
        assert provider["region"] == stack.environment.region


def test_prod_answers_only_on_its_domain_with_tls_1_2(synthesized):
    prod = synthesized["prod"]
    domain = prod.environment.domain
    (api,) = prod.resources("aws_api_gateway_rest_api").values()
    assert api["disable_execute_api_endpoint"] is True  # the execute-api endpoint negotiates TLS 1.0
    ((name_id, name),) = prod.resources("aws_api_gateway_domain_name").items()
    assert name["domain_name"] == domain.name
    assert name["security_policy"] == "TLS_1_2"
    assert name["regional_certificate_arn"] == domain.certificate_arn
    assert name["endpoint_configuration"] == {"types": ["REGIONAL"]}
    (mapping,) = prod.resources("aws_api_gateway_base_path_mapping").values()
    assert mapping["domain_name"] == f"${{aws_api_gateway_domain_name.{name_id}.domain_name}}"
    assert mapping["stage_name"].startswith("${aws_api_gateway_stage.") and "base_path" not in mapping
    outputs = prod.config["output"]
    assert outputs["api_url"]["value"] == f"https://{domain.name}/"
    assert outputs["api_domain_target"]["value"] == f"${{aws_api_gateway_domain_name.{name_id}.regional_domain_name}}"


def test_dev_on_the_emulator_keeps_the_execute_api_endpoint(dev):
    (api,) = dev.resources("aws_api_gateway_rest_api").values()
    assert api["disable_execute_api_endpoint"] is False
    assert dev.resources("aws_api_gateway_domain_name") == {}


def test_prod_reaches_the_operators_gateway_over_https_and_names_no_placeholder_host(synthesized):
    prod = synthesized["prod"]
    for function in prod.resources("aws_lambda_function").values():
        url = function["environment"]["variables"]["GATEWAY_BASE_URL"]
        assert url == str(prod.environment.gateway_base_url) and url.startswith("https://")
    text = json.dumps(prod.config)
    assert PLACEHOLDER_HOST.findall(text) == []
    assert PLACEHOLDER_HOST.search("https://api.sparkle.example/ and pay.example.com")  # the pattern bites


def test_the_repository_sets_no_gateway_or_domain_for_prod():
    from stacks.config import REPOSITORY_SETTINGS

    assert not {"gateway_base_url", "domain", "account_id", "region", "merchants"} & set(REPOSITORY_SETTINGS["prod"])


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_the_api_gateway_account_setting_lives_only_in_the_account_stack_deployed_first(synthesized, name):
    stack, account = _stacks_of(synthesized, name)
    assert stack.resources("aws_api_gateway_account") == {}
    assert len(account.resources("aws_api_gateway_account")) == 1
    manifest = json.loads((stack.directory.parent.parent / "manifest.json").read_text())
    assert manifest["stacks"][stack.environment.stack_id]["dependencies"] == [account.environment.account_stack_id]


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_the_account_logging_role_writes_every_log_group_of_the_environments_apis(synthesized, name):
    from stacks.account_stack import api_log_groups

    stack, account = _stacks_of(synthesized, name)
    (role,) = account.resources("aws_iam_role").values()
    (account_setting,) = account.resources("aws_api_gateway_account").values()
    assert account_setting["cloudwatch_role_arn"].startswith("${aws_iam_role.")
    assert role["name"].endswith(stack.environment.region)  # IAM names are global: one role per region
    statements = {s["sid"]: s for s in account.data("aws_iam_policy_document")["api-logging-policy"]["statement"]}
    writable = [arn.split(":log-group:")[1] for arn in statements["WriteApiLogs"]["resources"]]
    groups = [group["name"] for group in stack.resources("aws_cloudwatch_log_group").values()]
    stage_logs = [g for g in groups if g.startswith(("/aws/apigateway/", "API-Gateway-Execution-Logs_"))]
    assert len(stage_logs) == 2
    for group in stage_logs:
        assert any(fnmatchcase(f"{group}:*", pattern) for pattern in writable), group
    assert all(p.startswith((f"/aws/apigateway/{RESOURCE_PREFIX}", "API-Gateway-Execution-Logs_")) for p in writable)
    assert writable == [f"{group}:*" for group in api_log_groups(RESOURCE_PREFIX)]


def test_environments_of_one_account_and_region_share_one_account_stack(synthesized):
    prod = synthesized["prod"].environment
    assert prod.account_stack_id == "payments-account-111122223333-eu-west-1"
    moved = synthesized["dev"].environment.model_copy(update={"account_id": prod.account_id, "region": prod.region})
    assert moved.account_stack_id == prod.account_stack_id
    assert synthesized["scale"].environment.account_stack_id == "payments-account-444455556666-us-east-1"
