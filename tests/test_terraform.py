"""The synthesized stacks through real Terraform (offline, from the provider
mirror) and checkov: what an engineer's `cdktf deploy` and a scanner would see."""

import json
import subprocess

import pytest
import yaml

from tests.conftest import REPO
from tools.terraform import TerraformWorkspace

LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4096
IAM_INLINE_POLICY_LIMIT_CHARACTERS = 10240  # a role's inline policies together; each document is well under
CHECKOV = REPO / "scanner" / ".venv" / "bin" / "checkov"  # its own virtualenv (scanner/Pipfile)
CHECKOV_VERSION = "3.3.30"
# Every stack the app synthesizes: each environment's, and the account stack each one deploys after (stacks/app.py).
ACCOUNT_STACKS = [f"{name}-account" for name in ("dev", "prod")]
SCANNED = ["dev", "prod", *ACCOUNT_STACKS]


def stack_key(synthesized, name: str) -> str:
    """The key of a stack named by its environment, or by ``<environment>-account``: that environment's account."""
    environment, _, account = name.partition("-")
    return synthesized[environment].environment.account_stack_id if account else environment


@pytest.fixture(scope="session")
def initialized(synthesized, tmp_path_factory) -> dict[str, TerraformWorkspace]:
    workspaces = {}
    for name, stack in synthesized.items():
        workspace = TerraformWorkspace.copy_of(stack.directory, tmp_path_factory.mktemp(f"tf-{name}"))
        workspace.init()
        workspaces[name] = workspace
    return workspaces


@pytest.fixture(scope="session")
def taggable_types(initialized) -> set[str]:
    """Resource types whose provider schema has a ``tags`` argument."""
    schema = json.loads(initialized["dev"].run("providers", "schema", "-json").stdout)
    (provider,) = schema["provider_schemas"].values()
    return {
        resource_type
        for resource_type, definition in provider["resource_schemas"].items()
        if "tags" in definition["block"].get("attributes", {})
    }


@pytest.mark.parametrize("name", SCANNED)
def test_terraform_validate_passes(synthesized, initialized, name):
    result = initialized[stack_key(synthesized, name)].run("validate", "-json")
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["error_count"] == 0, report


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_every_taggable_resource_carries_the_merged_tags(synthesized, taggable_types, name):
    from stacks.config import DEFAULT_TAGS
    from tests.conftest import ENVIRONMENTS

    stack = synthesized[name]
    expected = {**DEFAULT_TAGS, **ENVIRONMENTS[name].tags}
    tagged = 0
    for resource_type, resource_name, body in stack.all_resources():
        if resource_type in taggable_types:
            assert body.get("tags") == expected, f"{resource_type}.{resource_name}"
            tagged += 1
        else:
            assert "tags" not in body, f"{resource_type}.{resource_name} cannot be tagged"
    assert tagged >= 20


# Skipped only in an environment whose configuration turns the control off, for the reason given.
CONFIGURED_SKIPS = {
    "CKV_AWS_115": (
        lambda config: config.functions.reserved_concurrency is None,
        "no reserved concurrency: a new account's 10 units of concurrency cannot hold any back (dev)",
    ),
}


@pytest.mark.parametrize("name", SCANNED)
def test_checkov_reports_no_failed_checks(synthesized, name):
    stack = synthesized[stack_key(synthesized, name)]
    stack_file = stack.directory / "cdk.tf.json"
    skips = yaml.safe_load((REPO / ".checkov.yaml").read_text())["skip-check"]  # the skips every stack shares
    skips += [check for check, (applies, _) in CONFIGURED_SKIPS.items() if applies(stack.environment)]
    result = subprocess.run(
        [str(CHECKOV), "-f", str(stack_file), "--framework", "terraform_json",
         "--output", "json", "--quiet", "--compact", "--skip-check", ",".join(skips)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,  # a report with failed checks exits 1; the assertions below name them
    )  # fmt: skip
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["passed"] > (50 if name in ACCOUNT_STACKS else 100)
    assert summary["parsing_errors"] == 0


def test_checkov_is_the_pinned_release():
    locked = json.loads((REPO / "scanner" / "Pipfile.lock").read_text())["default"]["checkov"]["version"]
    version = subprocess.run([str(CHECKOV), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert locked == f"=={CHECKOV_VERSION}" and version == CHECKOV_VERSION


def test_every_checkov_skip_gives_its_reason():
    lines = (REPO / ".checkov.yaml").read_text().splitlines()
    skips = [line for line in lines if line.strip().startswith("- CKV")]
    assert skips
    for line in skips:
        check, _, reason = line.partition("#")
        assert len(reason.strip()) > 20, f"{check.strip()} has no reason"


def test_the_scale_configuration_validates_within_every_limit(synthesized, initialized):
    """1,000 merchants and 5,000 principals: items, not environment variables or policy text (tests/conftest.py)."""
    from tests.conftest import SCALE_ACCOUNTS, SCALE_MERCHANTS, SCALE_PRINCIPALS

    stack = synthesized["scale"]
    report = json.loads(initialized["scale"].run("validate", "-json").stdout)
    assert report["valid"] is True and report["error_count"] == 0, report
    (items,) = stack.resources("aws_dynamodb_table_item").values()
    assert len(items["for_each"]) == SCALE_MERCHANTS + SCALE_PRINCIPALS
    for function in stack.resources("aws_lambda_function").values():
        assert len(json.dumps(function["environment"]["variables"])) < LAMBDA_ENVIRONMENT_LIMIT_BYTES
    (policy,) = stack.resources("aws_api_gateway_rest_api_policy").values()
    assert len(policy["policy"]) <= stack.environment.resource_policy_quota == 8192  # the default quota
    (_, deny) = json.loads(policy["policy"])["Statement"]
    assert len(deny["Condition"]["StringNotEquals"]["aws:PrincipalAccount"]) == SCALE_ACCOUNTS
    for document in stack.data("aws_iam_policy_document").values():
        assert len(json.dumps(document)) < IAM_INLINE_POLICY_LIMIT_CHARACTERS
