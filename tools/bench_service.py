"""`make bench`: per handler, cold import time against a bare ``import boto3``
measured in the same run (goal <= 1.6), in this virtualenv and, where the
functions' Python (python3.13) is installed, from the deployment bundle under
it as Lambda loads it (tools/lambda_runtime.py); per successful token payment with
metadata, the KMS calls and DynamoDB requests it makes, reads included,
counted from botocore events (goals: <= 1 and <= 3 per payment after a
container's first, which also looks the caller's merchant up and opens a data
key once; averaged over 99 payments), with the velocity rule on.

AWS is moto in process; the gateway is the Sparkle sandbox as its own process.
Tokens are vaulted by one service instance and paid by another, as the
tokenize and charge functions run in different containers.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMPORT_RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "5"))
PAYMENTS = int(os.environ.get("BENCH_PAYMENTS", "100"))


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return float(
        subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
        ).stdout
    )


def bench_imports() -> None:
    from lambdas.routes import Function

    modules = {"boto3 (baseline)": "boto3"} | {f.value: f.handler.rsplit(".", 1)[0] for f in Function}
    timings: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(IMPORT_RUNS):  # interleaved, so every module sees the same machine
        for name, module in modules.items():
            timings[name].append(import_seconds(module))
    python = platform.python_version()
    print(f"cold import in this virtualenv (Python {python}), median of {IMPORT_RUNS} fresh interpreters")
    _print_medians({name: statistics.median(runs) for name, runs in timings.items()})


def bench_bundle_imports() -> None:
    from stacks.config import FunctionSettings
    from tools import lambda_runtime

    version = FunctionSettings().runtime.removeprefix("python")
    python = lambda_runtime.interpreter(version)
    if python is None:
        print(f"\nno python{version} here (LAMBDA_PYTHON, PATH, pyenv): the bundle's imports are not measured")
        return
    medians = lambda_runtime.bench(python, version, IMPORT_RUNS)
    print(f"\ncold import from the bundle (Python {lambda_runtime.version_of(python)}, no byte code in the bundle, "
          f"as deployed), median of {IMPORT_RUNS} fresh interpreters")  # fmt: skip
    _print_medians(medians)


def _print_medians(medians: dict[str, float]) -> None:
    baseline = medians["boto3 (baseline)"]
    for name, median in medians.items():
        print(f"  {name:18} {median * 1000:7.0f} ms   x{median / baseline:.2f} boto3   (goal <= 1.6)")


def luhn_number(n: int) -> str:
    """The n-th of a run of valid test card numbers (none of them a sandbox decline card)."""
    from lambdas.domain.cards import luhn_valid

    body = f"42{n:013d}"
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


def bench_calls() -> None:
    from tools.emulator import EMULATOR_CREDENTIALS, free_port, sandbox_server

    os.environ.update(EMULATOR_CREDENTIALS | {"AWS_DEFAULT_REGION": "us-east-1"})
    with sandbox_server(free_port()) as sandbox_url:
        calls = token_payment_calls(sandbox_url, PAYMENTS)
    first, rest = calls[0], sum(calls[1:], Counter())
    print(f"\nper successful token payment with metadata: the container's first (it also looks its caller's merchant"
          f" up and opens a data key, once), then the mean of the other {PAYMENTS - 1}")  # fmt: skip
    for service, name, goal in (("kms", "KMS calls", 1), ("dynamodb", "DynamoDB requests", 3)):
        print(f"  {name:18} first {requests_to(first, service):2}   then"
              f" {requests_to(rest, service) / (PAYMENTS - 1):5.2f} (goal <= {goal})"
              f"   all {PAYMENTS}: {requests_to(first + rest, service) / PAYMENTS:.2f} per payment"
              f"   ({_detail(first + rest, service)})")  # fmt: skip


def token_payment_calls(sandbox_url: str, payments: int) -> list[Counter]:
    """``payments`` successful token payments with metadata, the velocity rule on, through the API's handler in
    moto (in process; AWS credentials and region are the caller's), each with a card of its own; per payment, the
    AWS requests it made: (service, operation) -> count, from botocore's events. The tokens are vaulted by one
    service instance and paid by another (a fresh container: its first payment looks the merchant up). Leaves the
    functions' environment in ``os.environ`` and their adapters cached in ``bootstrap``."""
    import boto3
    from moto import mock_aws

    sys.path.insert(0, str(REPO))
    from lambdas import bootstrap
    from tools.api_events import api_event, invoke
    from tools.function_resources import provision

    calls: list[Counter] = []

    def count(event_name: str, **_) -> None:
        _, service, operation = event_name.split(".")
        calls[-1][(service, operation)] += 1

    with mock_aws():
        rules = {"velocity_per_hour": 20}
        caller = api_event("GET", "/payments/x")["requestContext"]["identity"]["userArn"]
        os.environ.update(provision(sandbox_url, suffix="bench", merchants={"bench": ((caller,), rules)}))
        bootstrap.adapters.cache_clear()
        tokens = [_ok(invoke(api_event("POST", "/tokens", {"card": {"number": luhn_number(n), "exp_month": 12,
                                                                      "exp_year": 2030}})))["token"]
                  for n in range(payments)]  # fmt: skip
        bootstrap.adapters.cache_clear()  # the charge function's container
        boto3.DEFAULT_SESSION.events.register("before-call.*.*", count)
        try:
            for n, token in enumerate(tokens):
                body = {
                    "amount": 1000 + n,
                    "currency": "usd",
                    "source": {"token": token},
                    "metadata": {"order_id": f"A-{n}", "customer": "c-42"},
                }
                calls.append(Counter())
                _ok(invoke(api_event("POST", "/payments", body, headers={"Idempotency-Key": f"order-{n}"})))
        finally:
            boto3.DEFAULT_SESSION.events.unregister("before-call.*.*", count)
    return calls


def requests_to(calls: Counter, service: str) -> int:
    """How many of ``calls`` (as token_payment_calls counts them) went to ``service`` ("kms", "dynamodb")."""
    return sum(n for (s, _), n in calls.items() if s == service)


def _detail(calls: Counter, service: str) -> str:
    return ", ".join(f"{op} {n}" for (s, op), n in sorted(calls.items()) if s == service)


def _ok(response: dict) -> dict:
    if response["statusCode"] not in (200, 201):
        raise RuntimeError(f"{response['statusCode']}: {response['body']}")
    return json.loads(response["body"])


if __name__ == "__main__":
    bench_imports()
    bench_bundle_imports()
    if "--imports-only" not in sys.argv[1:]:
        bench_calls()
