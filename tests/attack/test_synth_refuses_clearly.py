"""Attack (an operator's honest mistake): main.py promises that a bad configuration ends in ``synth refused: …``
that "says which and where to set it" (README, 'Deploying', step 1), before the provider bindings are imported.

Shapes of operator file an operator can write by mistake end instead in a Python traceback from stacks/config.py:
the environment written as an array of tables (``[[prod]]``, the way the merchants are written), an environment
set to a plain value, and a path that names a directory. A TOML syntax error is refused without naming the file
it is in. An explicitly named operator file that does not exist is silently treated as no file at all: dev then
synthesizes with the repository's settings, and prod's refusal lists every key as missing "in [prod] of" that
file instead of saying the file is not there."""

import os
import subprocess
import sys

import pytest

from stacks.config import OPERATOR_CONFIG_VARIABLE, configured_environment
from tests.conftest import REPO

CASES = {
    "array of tables": '[[prod]]\naccount_id = "111122223333"\nregion = "eu-west-1"\n',
    "plain value": 'prod = "111122223333"\n',
    "syntax error": '[prod\naccount_id = "111122223333"\n',
}


def _synth(operator_path) -> subprocess.CompletedProcess:
    environment = os.environ | {OPERATOR_CONFIG_VARIABLE: str(operator_path), "PAYMENTS_ENVIRONMENTS": "prod"}
    return subprocess.run([sys.executable, "main.py"], cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=180, check=False)  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_operator_file_is_refused_clearly_and_named(case, tmp_path):
    path = tmp_path / "operator.toml"
    path.write_text(CASES[case])
    result = _synth(path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, f"{case}: a traceback, not a refusal:\n{result.stderr[-600:]}"
    assert result.stderr.startswith("synth refused:") and str(path) in result.stderr, result.stderr


def test_an_operator_file_that_is_a_directory_is_refused_clearly(tmp_path):
    result = _synth(tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, f"a traceback, not a refusal:\n{result.stderr[-600:]}"


def test_an_operator_file_named_but_missing_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(OPERATOR_CONFIG_VARIABLE, str(tmp_path / "operatr.toml"))  # a typo in the path
    with pytest.raises(ValueError, match=r"operatr\.toml"):
        config = configured_environment("dev")
        print(f"synthesizes {config.name} as if no operator file had been named")
