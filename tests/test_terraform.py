"""The synthesized stacks through real Terraform (offline, from the provider
mirror) and checkov: what an engineer's `cdktf deploy` and a scanner would see.

Their answers are kept under ``.cache/infra`` (see ``ResultCache``): a run on unchanged
stacks and tools reads them back. CI, on a fresh clone, has no such cache."""

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tools.terraform import TerraformWorkspace, plugin_mirror

LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4096
IAM_INLINE_POLICY_LIMIT_CHARACTERS = 10240  # a role's inline policies together; each document is well under
CHECKOV = REPO / "scanner" / ".venv" / "bin" / "checkov"  # its own virtualenv (scanner/Pipfile)
CHECKOV_VERSION = "3.3.30"
# Every stack the app synthesizes: each environment's, and the account stack each one deploys after (stacks/app.py).
ACCOUNT_STACKS = [f"{name}-account" for name in ("dev", "prod")]
SCANNED = ["dev", "prod", *ACCOUNT_STACKS]
CACHE = REPO / ".cache" / "infra"


def stack_key(synthesized, name: str) -> str:
    """The key of a stack named by its environment, or by ``<environment>-account``: that environment's account."""
    environment, _, account = name.partition("-")
    return synthesized[environment].environment.account_stack_id if account else environment


def digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def files_digest(directory: Path) -> str:
    """Every file of a synthesized stack (its JSON and its assets), by path and content."""
    contents = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        contents.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    return contents.hexdigest()


class ResultCache:
    """Terraform's and checkov's answers, each a JSON file named by the digest of what decides it: the stack's
    files and the tools' versions. Without a directory (CI) every answer is computed."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def get(self, key: str, compute: Callable[[], object]):
        path = self.directory / f"{key}.json" if self.directory else None
        if path and path.exists():
            return json.loads(path.read_text())
        value = compute()
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(value))
            partial.replace(path)
        return value


@pytest.fixture(scope="session")
def cache() -> ResultCache:
    return ResultCache(None if os.environ.get("CI") else CACHE)


@pytest.fixture(scope="session")
def terraform_version() -> dict:
    """Terraform's version, the providers it installs from (the mirror's, else the registry's), and the code that
    turns a synthesized stack into the workspace Terraform runs in (a cached answer skips that code too)."""
    version = subprocess.run(["terraform", "version", "-json"], capture_output=True, text=True, check=True)
    mirror = plugin_mirror()
    providers = sorted(str(p.relative_to(mirror)) for p in mirror.glob("*/*/*/*/*/*")) if mirror else "registry"
    workspace_code = hashlib.sha256((REPO / "tools" / "terraform.py").read_bytes()).hexdigest()
    return {
        "terraform": json.loads(version.stdout)["terraform_version"],
        "providers": providers,
        "workspace": workspace_code,
    }


@pytest.fixture(scope="session")
def workspaces(synthesized, tmp_path_factory) -> Callable[[str], TerraformWorkspace]:
    """A stack's initialized Terraform workspace, made the first time it is asked for."""
    made: dict[str, TerraformWorkspace] = {}

    def workspace(name: str) -> TerraformWorkspace:
        if name not in made:
            copy = tmp_path_factory.mktemp(f"tf-{name}")
            made[name] = TerraformWorkspace.copy_of(synthesized[name].directory, copy)
            made[name].init()
        return made[name]

    return workspace


@pytest.fixture(scope="session")
def validated(synthesized, workspaces, cache, terraform_version) -> Callable[[str], dict]:
    """``terraform validate -json``'s report on a stack."""

    def report(name: str) -> dict:
        key = digest("validate", files_digest(synthesized[name].directory), terraform_version)
        return cache.get(key, lambda: json.loads(workspaces(name).run("validate", "-json").stdout))

    return report


@pytest.fixture(scope="session")
def taggable_types(synthesized, workspaces, cache, terraform_version) -> set[str]:
    """Resource types whose provider schema has a ``tags`` argument."""

    def compute() -> list[str]:
        schema = json.loads(workspaces("dev").run("providers", "schema", "-json").stdout)
        (provider,) = schema["provider_schemas"].values()
        return sorted(
            resource_type
            for resource_type, definition in provider["resource_schemas"].items()
            if "tags" in definition["block"].get("attributes", {})
        )

    required = synthesized["dev"].config["terraform"]["required_providers"]
    return set(cache.get(digest("taggable", required, terraform_version), compute))


@pytest.mark.parametrize("name", SCANNED)
def test_terraform_validate_passes(synthesized, validated, name):
    report = validated(stack_key(synthesized, name))
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


def checkov(stack_file: Path, skips: list[str]) -> dict:
    result = subprocess.run(
        [str(CHECKOV), "-f", str(stack_file), "--framework", "terraform_json",
         "--output", "json", "--quiet", "--compact", "--skip-check", ",".join(skips)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,  # a report with failed checks exits 1; the test's assertions name them
    )  # fmt: skip
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", SCANNED)
def test_checkov_reports_no_failed_checks(synthesized, cache, name):
    stack = synthesized[stack_key(synthesized, name)]
    stack_file = stack.directory / "cdk.tf.json"
    skips = yaml.safe_load((REPO / ".checkov.yaml").read_text())["skip-check"]  # the skips every stack shares
    skips += [check for check, (applies, _) in CONFIGURED_SKIPS.items() if applies(stack.environment)]
    scanner = (REPO / "scanner" / "Pipfile.lock").read_text()
    key = digest("checkov", files_digest(stack.directory), skips, (REPO / ".checkov.yaml").read_text(), scanner)
    report = cache.get(key, lambda: checkov(stack_file, skips))
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


def test_the_scale_configuration_validates_within_every_limit(synthesized, validated):
    """1,000 merchants and 5,000 principals: items, not environment variables or policy text (tests/conftest.py)."""
    from tests.conftest import SCALE_ACCOUNTS, SCALE_MERCHANTS, SCALE_PRINCIPALS

    stack = synthesized["scale"]
    report = validated("scale")
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
