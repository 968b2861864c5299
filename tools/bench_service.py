"""`make bench`: per handler, cold import time against a bare ``import boto3``
measured in the same run by the same interpreter: from the deployment bundle
(its byte code compiled in) under the functions' Python (python3.13), as Lambda
loads it (tools/lambda_runtime.py; goal <= 1.3), and in this virtualenv; per
successful token payment with metadata, the KMS calls and DynamoDB requests it makes, reads included,
counted from botocore events (goals: <= 1 and <= 3 per payment after a
container's first, which also looks the caller's merchant up and opens a data
key once; averaged over 99 payments), with the velocity rule on; and the same
per step of as many two-step payments: authorised, then captured or cancelled
in the capture function's container (goals: 0 and <= 3 per step after a
container's first).

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMPORT_RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "5"))
PAYMENTS = int(os.environ.get("BENCH_PAYMENTS", "100"))
BUNDLE_IMPORT_GOAL = 1.3  # a handler's cold import from the bundle, against ``import boto3``


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
    print(f"\ncold import in this virtualenv (Python {python}), median of {IMPORT_RUNS} fresh interpreters")
    _print_medians({name: statistics.median(runs) for name, runs in timings.items()})


def bench_bundle_imports() -> None:
    from stacks.config import FunctionSettings
    from stacks.lambda_bundle import interpreter
    from tools import lambda_runtime

    version = FunctionSettings().runtime.removeprefix("python")
    python = interpreter(version)
    if python is None:
        print(f"no python{version} here (LAMBDA_PYTHON, PATH, pyenv): the bundle's imports are not measured")
        return
    medians = lambda_runtime.bench(python, version, IMPORT_RUNS)
    print(f"cold import from the bundle as deployed (Python {lambda_runtime.version_of(python)}, byte code "
          f"compiled in), median of {IMPORT_RUNS} fresh interpreters")  # fmt: skip
    _print_medians(medians, BUNDLE_IMPORT_GOAL)


def _print_medians(medians: dict[str, float], goal: float | None = None) -> None:
    baseline = medians["boto3 (baseline)"]
    for name, median in medians.items():
        ratio = median / baseline
        verdict = "" if goal is None else f"   (goal <= {goal}{'' if ratio <= goal else ': over'})"
        print(f"  {name:18} {median * 1000:7.0f} ms   x{ratio:.2f} boto3{verdict}")


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
        steps = two_step_calls(sandbox_url, PAYMENTS)
    first, rest = calls[0], sum(calls[1:], Counter())
    print(f"\nper successful token payment with metadata: the container's first (it also looks its caller's merchant"
          f" up and opens a data key, once), then the mean of the other {PAYMENTS - 1}")  # fmt: skip
    for service, name, goal in (("kms", "KMS calls", 1), ("dynamodb", "DynamoDB requests", 3)):
        print(f"  {name:18} first {requests_to(first, service):2}   then"
              f" {requests_to(rest, service) / (PAYMENTS - 1):5.2f} (goal <= {goal})"
              f"   all {PAYMENTS}: {requests_to(first + rest, service) / PAYMENTS:.2f} per payment"
              f"   ({_detail(first + rest, service)})")  # fmt: skip
    _print_steps(steps)


def _print_steps(steps: dict[str, list[Counter]]) -> None:
    print(f"\nper step of {PAYMENTS} two-step token payments with metadata: authorised in the charge function's"
          " container, then captured (every other one, every fourth in part) or cancelled in the capture function's;"
          " a step's first, then the mean of its others (each container's first, the first authorisation and the"
          " first capture, also looks its caller's merchant up and opens a data key)")  # fmt: skip
    for step, calls in steps.items():
        later = sum(calls[1:], Counter())
        kms_goal = 1 if step == "authorise" else 0  # an authorisation is a payment's first step: its goals
        for service, name, goal in (("kms", "KMS calls", kms_goal), ("dynamodb", "DynamoDB requests", 3)):
            print(f"  {step:9} {name:18} first {requests_to(calls[0], service):2}   then"
                  f" {requests_to(later, service) / (len(calls) - 1):5.2f} (goal <= {goal})"
                  f"   ({_detail(later, service)})")  # fmt: skip


def token_payment_calls(sandbox_url: str, payments: int) -> list[Counter]:
    """``payments`` successful token payments with metadata, the velocity rule on, through the API's handler in
    moto (in process; AWS credentials and region are the caller's), each with a card of its own; per payment, the
    AWS requests it made: (service, operation) -> count, from botocore's events. The tokens are vaulted by one
    service instance and paid by another (a fresh container: its first payment looks the merchant up). Leaves the
    functions' environment in ``os.environ`` and their adapters cached in ``bootstrap``."""
    with _counting_api(sandbox_url) as api:
        tokens = api.tokens(payments)
        _new_container()  # the charge function's
        return [api.counted("POST", "/payments", _payment(n, token), f"order-{n}")[1] for n, token in enumerate(tokens)]


STEPS = {"authorise": "requires_capture", "capture": "succeeded", "cancel": "canceled"}  # each step's payment status


def two_step_calls(sandbox_url: str, payments: int) -> dict[str, list[Counter]]:
    """``payments`` token payments with metadata authorised (``"capture": false``), as ``token_payment_calls`` makes
    them, in a fresh container of the charge function; then, in a fresh container of the capture function, each
    captured (every other one, every fourth in part) or cancelled. Per step (``STEPS``), each request's AWS
    requests, in order; each ends as its step says, or this raises."""
    calls: dict[str, list[Counter]] = {step: [] for step in STEPS}
    with _counting_api(sandbox_url) as api:
        tokens = api.tokens(payments)
        _new_container()  # the charge function's
        authorised = [
            api.step("authorise", "POST", "/payments", _payment(n, token) | {"capture": False}, f"auth-{n}", calls)
            for n, token in enumerate(tokens)
        ]
        _new_container()  # the capture function's
        for n, payment_id in enumerate(authorised):
            step = "cancel" if n % 2 else "capture"
            body = {"amount": 500} if n % 4 == 2 else {}
            api.step(step, "POST", f"/payments/{payment_id}/{step}", body, f"{step}-{n}", calls)
    return calls


class _CountingApi:
    """The API's handlers invoked in process, as ``tools.api_events.invoke`` runs them; the AWS requests of each
    counted request: (service, operation) -> count, from botocore's events."""

    def __init__(self) -> None:
        self._counting: Counter | None = None

    def on_call(self, event_name: str, **_) -> None:
        if self._counting is not None:
            _, service, operation = event_name.split(".")
            self._counting[(service, operation)] += 1

    def tokens(self, count: int) -> list[str]:
        """``count`` vaulted cards, each of its own, in a fresh container of the tokenize function, not counted."""
        _new_container()
        card = {"exp_month": 12, "exp_year": 2030}
        return [_ok(self._invoke("POST", "/tokens", {"card": {"number": luhn_number(n), **card}}))["token"]
                for n in range(count)]  # fmt: skip

    def counted(self, method: str, path: str, body: dict, key: str) -> tuple[dict, Counter]:
        """The answer's body, and the AWS requests the request made."""
        self._counting = counting = Counter()
        try:
            return _ok(self._invoke(method, path, body, {"Idempotency-Key": key})), counting
        finally:
            self._counting = None

    def step(self, step: str, method: str, path: str, body: dict, key: str, calls: dict[str, list[Counter]]) -> str:
        """One step of a two-step payment, its requests added to ``calls[step]``; the payment's id."""
        payment, counting = self.counted(method, path, body, key)
        if payment["status"] != STEPS[step]:
            raise RuntimeError(f"{step} {payment['id']}: {payment['status']}, not {STEPS[step]}")
        calls[step].append(counting)
        return str(payment["id"])

    @staticmethod
    def _invoke(method: str, path: str, body: dict, headers: dict | None = None) -> dict:
        from tools.api_events import api_event, invoke

        return invoke(api_event(method, path, body, headers=headers))


@contextmanager
def _counting_api(sandbox_url: str) -> Iterator[_CountingApi]:
    """The functions' resources in moto (in process; AWS credentials and region are the caller's) for one merchant,
    the velocity rule on, the gateway at ``sandbox_url``. Leaves the functions' environment in ``os.environ`` and
    their adapters cached in ``bootstrap``."""
    import boto3
    from moto import mock_aws

    sys.path.insert(0, str(REPO))
    from tools.api_events import api_event
    from tools.function_resources import provision

    api = _CountingApi()
    with mock_aws():
        rules = {"velocity_per_hour": 20}
        caller = api_event("GET", "/payments/x")["requestContext"]["identity"]["userArn"]
        os.environ.update(provision(sandbox_url, suffix="bench", merchants={"bench": ((caller,), rules)}))
        boto3.DEFAULT_SESSION.events.register("before-call.*.*", api.on_call)
        try:
            yield api
        finally:
            boto3.DEFAULT_SESSION.events.unregister("before-call.*.*", api.on_call)


def _new_container() -> None:
    """The next requests run as in a new container of their function: nothing cached (clients, data keys, merchants,
    the gateway secret)."""
    from lambdas import bootstrap

    bootstrap.adapters.cache_clear()


def _payment(n: int, token: str) -> dict:
    return {
        "amount": 1000 + n,
        "currency": "usd",
        "source": {"token": token},
        "metadata": {"order_id": f"A-{n}", "customer": "c-42"},
    }


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
    bench_bundle_imports()
    bench_imports()
    if "--imports-only" not in sys.argv[1:]:
        bench_calls()
