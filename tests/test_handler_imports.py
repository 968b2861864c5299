"""Each function's handler, imported as a cold start imports it, loads only what its routes use: its own use cases,
no gateway client, no webhook sender, and pydantic's model machinery in none (bodies are validated by
lambdas/request_bodies.py, on pydantic_core alone, and only by the functions that take a body)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lambdas.routes import Function

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration  # a fresh interpreter per handler

NEVER_AT_IMPORT = {
    "pydantic",  # the models' machinery (lambdas.models: the OpenAPI description and the tests)
    "lambdas.models",
    "requests",  # the gateway client's, loaded on a function's first gateway call
    "lambdas.adapters.sparkle",
    "aws_lambda_powertools.utilities.parameters",  # the gateway secret's
    "lambdas.adapters.webhook_sender",  # the delivery function's, loaded when it first delivers
}
BODY_VALIDATORS = {"pydantic_core", "lambdas.request_bodies"}
TAKES_A_BODY = {Function.TOKENIZE, Function.CHARGE, Function.REFUND, Function.CAPTURE, Function.WEBHOOKS}
# The use cases each function may load (those its routes run, and those they import), besides the package's own.
USE_CASES = {
    Function.TOKENIZE: {"tokens"},
    Function.CHARGE: {"payments", "tokens"},
    Function.REFUND: {"refunds", "reads"},
    Function.CAPTURE: {"captures", "reads"},
    Function.WEBHOOKS: {"webhooks", "events", "reads"},
    Function.READ: {"reads", "events", "settlement_reads", "checkpoints", "webhooks"},
    Function.RECONCILE: {"reconcile", "captures", "payments", "refunds", "reads", "tokens"},
    Function.CHECKPOINT: {"checkpoints", "reads"},
    Function.DELIVER: {"deliveries"},
    Function.SETTLE: {"settlements"},
}
ALWAYS_USE_CASES = {"lambdas.use_cases", "lambdas.use_cases.idempotency"}


def loaded_by(module: str) -> set[str]:
    """The modules in ``sys.modules`` once a fresh interpreter has imported ``module``."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout))


def test_every_function_is_listed():
    assert set(USE_CASES) == set(Function)


@pytest.mark.parametrize("function", list(Function), ids=lambda function: function.value)
def test_a_handler_loads_only_what_its_routes_use(function):
    loaded = loaded_by(function.handler.rsplit(".", 1)[0])
    assert not loaded & NEVER_AT_IMPORT
    if function not in TAKES_A_BODY:
        assert not loaded & BODY_VALIDATORS
    use_cases = {name for name in loaded if name.startswith("lambdas.use_cases")} - ALWAYS_USE_CASES
    assert use_cases <= {f"lambdas.use_cases.{name}" for name in USE_CASES[function]}
