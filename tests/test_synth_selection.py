"""Which environments `make synth` and `cdktf synth` (main.py) synthesize: every configured one, skipping in one line
an environment its operator has not configured yet; one named in PAYMENTS_ENVIRONMENTS, or with a table in the
operator's file, is synthesized or refused with ``synth refused: …`` naming what to set and where, never a traceback.

Each refusal comes before the provider bindings load, so those subprocesses take a second; the one synthesis that
succeeds writes to a temporary directory (CDKTF_OUTDIR)."""

import os
import subprocess
import sys

import pytest

from main import ENVIRONMENTS_VARIABLE, skipped_line
from stacks.config import DEFAULT_OPERATOR_CONFIG, OPERATOR_CONFIG_VARIABLE, configured_environment
from tests.conftest import REPO

MALFORMED = {
    "array of tables": '[[prod]]\naccount_id = "111122223333"\nregion = "eu-west-1"\n',
    "plain value": 'prod = "111122223333"\n',
    "syntax error": '[prod\naccount_id = "111122223333"\n',
}


def _synth(operator_path, environments: str | None = "prod", **extra: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != ENVIRONMENTS_VARIABLE}
    environment |= {OPERATOR_CONFIG_VARIABLE: str(operator_path), **extra}
    if environments is not None:
        environment[ENVIRONMENTS_VARIABLE] = environments
    return subprocess.run([sys.executable, "main.py"], cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


def _refused(result: subprocess.CompletedProcess, case: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, f"{case}: a traceback, not a refusal:\n{result.stderr[-600:]}"
    assert result.stderr.startswith("synth refused:"), result.stderr


@pytest.mark.parametrize("environments", ["prod", None], ids=["prod named", "default selection"])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_operator_file_is_refused_clearly_and_named(case, environments, tmp_path):
    path = tmp_path / "operator.toml"
    path.write_text(MALFORMED[case])
    result = _synth(path, environments)
    _refused(result, case)
    assert str(path) in result.stderr, result.stderr


def test_an_operator_file_that_is_a_directory_is_refused_clearly(tmp_path):
    _refused(_synth(tmp_path), "a directory")


def test_an_operator_file_named_but_missing_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(OPERATOR_CONFIG_VARIABLE, str(tmp_path / "operatr.toml"))  # a typo in the path
    with pytest.raises(ValueError, match=r"operatr\.toml"):
        config = configured_environment("dev")
        print(f"synthesizes {config.name} as if no operator file had been named")


def test_prod_named_without_its_operators_settings_is_refused_saying_what_and_where(tmp_path):
    operator_file = tmp_path / "no-prod-operator.toml"
    operator_file.write_text("# the operator has not configured prod yet\n")
    result = _synth(operator_file, "prod")
    assert result.returncode == 1
    assert "synth refused: environment prod cannot be synthesized: account_id: Field required" in result.stderr
    assert "no-prod-operator.toml" in result.stderr


def test_a_deploy_targeting_an_unconfigured_prod_is_refused_saying_what_and_where(tmp_path):
    operator_file = tmp_path / "no-prod-operator.toml"
    operator_file.write_text("# the operator has not configured prod yet\n")
    result = _synth(operator_file, None, CDKTF_TARGET_STACK_ID="payments-prod")
    _refused(result, "targeted prod")
    assert "environment prod cannot be synthesized: account_id: Field required" in result.stderr


def test_an_incomplete_operator_table_is_refused_not_skipped(tmp_path):
    operator_file = tmp_path / "operator.toml"
    operator_file.write_text('[prod]\nregion = "eu-west-1"\n')
    result = _synth(operator_file, environments=None)
    _refused(result, "an incomplete [prod]")
    assert "environment prod cannot be synthesized: account_id: Field required" in result.stderr


def test_the_skip_line_names_the_operator_file_and_the_stack_a_deploy_would_not_find(monkeypatch):
    monkeypatch.delenv(OPERATOR_CONFIG_VARIABLE, raising=False)
    line = skipped_line(["prod"])
    assert "\n" not in line
    assert f"[prod] in {DEFAULT_OPERATOR_CONFIG} or the file ${OPERATOR_CONFIG_VARIABLE} names" in line
    assert "`cdktf deploy payments-prod`" in line
    monkeypatch.setenv(OPERATOR_CONFIG_VARIABLE, "")
    assert f"[prod] in the file ${OPERATOR_CONFIG_VARIABLE} names" in skipped_line(["prod"])


def test_a_fresh_clone_synthesizes_dev_and_its_account_stack_and_skips_prod_in_one_line(monkeypatch, tmp_path):
    """No operator file, nothing selected: exit 0, one line on stdout about prod, and Node's banner (if any) as text,
    never as Python's repr of bytes."""
    monkeypatch.setenv(OPERATOR_CONFIG_VARIABLE, "")  # no operator file, whatever this machine has
    outdir = tmp_path / "cdktf.out"
    result = _synth("", environments=None, CDKTF_OUTDIR=str(outdir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert [line for line in result.stdout.splitlines() if line.strip()] == [skipped_line(["prod"])]
    assert sorted(path.name for path in (outdir / "stacks").iterdir()) == [
        "payments-account-123456789012-us-east-1",
        "payments-dev",
    ]
    assert [line for line in result.stderr.splitlines() if line.startswith("b'")] == []


def test_a_warning_from_jsiis_node_runtime_is_printed_as_text(tmp_path):
    """A Node release jsii has no record of makes its runtime warn before the protocol starts: the lines reach the
    engineer as text, never as Python bytes reprs."""
    version = tmp_path / "report-untested-version.js"
    version.write_text(
        'Object.defineProperty(process, "version", { value: "v99.0.0" });\n'
        'Object.defineProperty(process.versions, "node", { value: "99.0.0" });\n'
    )
    node = tmp_path / "node"
    node.write_text(f'#!/bin/sh\nexec node -r "{version}" "$@"\n')
    node.chmod(0o755)
    run = subprocess.run(
        [sys.executable, "-c", "import stacks, constructs"],
        check=False,
        cwd=REPO,
        env=os.environ | {"JSII_NODE": str(node)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "has not been tested with node v99.0.0" in run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith(("b'", 'b"'))] == []
