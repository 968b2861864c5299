"""Session fixtures: the app is synthesized once per run (importing the provider
bindings costs ~25 s and ~1.5 GB), and every test reads the output."""

import fcntl
import json
import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from lambdas import deadline
from stacks.config import DEV, ENVIRONMENT_NAMES, EnvironmentConfig, MerchantConfig, load_environment

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.service_fixtures", "tests.lanes"]


@dataclass(frozen=True)
class SynthesizedStack:
    environment: EnvironmentConfig
    directory: Path
    config: dict

    @property
    def name(self) -> str:
        return self.environment.name

    def resources(self, resource_type: str) -> dict[str, dict]:
        return self.config.get("resource", {}).get(resource_type, {})

    def data(self, data_type: str) -> dict[str, dict]:
        return self.config.get("data", {}).get(data_type, {})

    def all_resources(self):
        for resource_type, resources in self.config.get("resource", {}).items():
            for name, body in resources.items():
                yield resource_type, name, body


OPERATOR_EXAMPLE = REPO / "docs" / "operator.example.toml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `make mutate`, the test files whose chosen tests are quickest run first.

    mutmut stops at a mutant's first failing test (-x); most mutants fall to a unit test, and this
    spares them the slow tests that mutmut's own order would often run before it. A file's tests stay
    together, so module fixtures are built once. Outside a mutant run, nothing changes."""
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    durations = json.loads((REPO / "mutmut-stats.json").read_text())["duration_by_test"]
    cost_by_file: dict[str, float] = {}
    for item in items:
        test_file = item.nodeid.split("::")[0]
        cost_by_file[test_file] = cost_by_file.get(test_file, 0.0) + durations.get(item.nodeid, 0.0)
    items.sort(key=lambda item: cost_by_file[item.nodeid.split("::")[0]])


def example_operator_settings() -> dict:
    """The documented operator example with hosts of the test operator's own in place of its placeholders."""
    text = OPERATOR_EXAMPLE.read_text()
    text = text.replace("api.sparkle.example", "api.sparkle.internal").replace("example.com", "operator.internal")
    return tomllib.loads(text)


# Every environment as the tests synthesize it: the repository's settings, prod completed by the test operator.
ENVIRONMENTS: dict[str, EnvironmentConfig] = {
    name: load_environment(name, example_operator_settings()) for name in ENVIRONMENT_NAMES
}

SCALE_MERCHANTS, SCALE_PRINCIPALS, SCALE_ACCOUNTS = 1000, 5000, 50
SCALE_ALARMS = {
    "subscriptions": [
        {"protocol": "email", "endpoint": "payments-oncall@operator.invalid"},
        {"protocol": "https", "endpoint": "https://pager.operator.invalid/hooks/payments"},
    ],
    "p99_latency_ms": 4000,
    "waf_blocked": 500,
}


def scale_config() -> EnvironmentConfig:
    """The mapping's claim: 1,000 merchants acting through 5,000 roles in 50 accounts, on dev's settings, with its
    state in S3; and an operator's alarm settings (``SCALE_ALARMS``)."""
    per_merchant = SCALE_PRINCIPALS // SCALE_MERCHANTS
    merchants = tuple(
        MerchantConfig(
            id=f"merchant-{m:04d}",
            principals=tuple(
                f"arn:aws:iam::{100000000000 + (m * per_merchant + r) % SCALE_ACCOUNTS}:role/checkout-{m}-{r}"
                for r in range(per_merchant)
            ),
        )
        for m in range(SCALE_MERCHANTS)
    )
    # The S3 backend too, in an account of its own (environments sharing an account keep state in one place).
    scale = {
        "name": "scale",
        "merchants": merchants,
        "usage_plan_quota": SCALE_MERCHANTS,  # a usage plan each: the account's quota raised to fit
        "state_bucket": "payments-scale-state",
        "account_id": "444455556666",
        "key_administrators": ("arn:aws:iam::444455556666:role/key-administrator",),
        "alarms": SCALE_ALARMS,
    }
    return EnvironmentConfig.model_validate(DEV.model_dump() | scale)


def snap_start_config() -> EnvironmentConfig:
    """dev with SnapStart on, beside it in its account (whose account stack it leaves as it is)."""
    return EnvironmentConfig.model_validate(DEV.model_dump() | {"name": "snap", "snap_start": True})


@pytest.fixture(autouse=True)
def no_deadline_left_over():
    """A test that invokes a handler leaves its request's deadline set in this thread: later tests start without."""
    yield
    deadline.start_from(None)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Held by one process at a time (the run's xdist workers share ``path``)."""
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> dict[str, SynthesizedStack]:
    """Every environment, the scale stack (``scale_config``), the SnapStart stack (``snap_start_config``) and their
    accounts' stacks: one synth per run; under xdist, the first worker that needs it synthesizes, and the others
    read its output."""
    run_directory = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_directory = run_directory.parent  # the directory the run's workers share
    outdir, done = run_directory / "cdktf.out", run_directory / "cdktf.out.done"
    environments = [*ENVIRONMENTS.values(), scale_config(), snap_start_config()]
    with locked(run_directory / "cdktf.out.lock"):
        if not done.exists():
            from stacks.app import build_app  # imports the provider bindings: once per run

            build_app(environments, outdir=outdir, build_dir=REPO / "build" / "lambda").synth()
            done.touch()
    stacks = {}
    for config in environments:  # by environment name, and each account stack by its id
        for key, stack_id in ((config.name, config.stack_id), (config.account_stack_id, config.account_stack_id)):
            directory = outdir / "stacks" / stack_id
            stacks.setdefault(
                key, SynthesizedStack(config, directory, json.loads((directory / "cdk.tf.json").read_text()))
            )
    return stacks


@pytest.fixture(params=sorted(ENVIRONMENTS))
def stack(request, synthesized) -> SynthesizedStack:
    return synthesized[request.param]


@pytest.fixture
def dev(synthesized) -> SynthesizedStack:
    return synthesized["dev"]


def resolve(reference: str) -> tuple[str, str, str]:
    """``${aws_kms_key.vault_key_ABC.arn}`` -> ("aws_kms_key", "vault_key_ABC", "arn")."""
    inner = reference.removeprefix("${").removesuffix("}")
    resource_type, name, attribute = inner.split(".", 2)
    return resource_type, name, attribute
