"""Session fixtures: the app is synthesized once (importing the provider
bindings costs ~25 s and ~1.5 GB), and every test reads the output."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from lambdas import deadline
from stacks.config import ENVIRONMENTS, EnvironmentConfig, MerchantConfig

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.service_fixtures"]


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


SCALE_MERCHANTS, SCALE_PRINCIPALS, SCALE_ACCOUNTS = 1000, 5000, 50


def scale_config() -> EnvironmentConfig:
    """The mapping's claim: 1,000 merchants acting through 5,000 roles in 50 accounts, on dev's settings, with its
    state in S3."""
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
    scale = {"name": "scale", "merchants": merchants, "state_bucket": "payments-scale-state"}  # the S3 backend too
    return EnvironmentConfig.model_validate(ENVIRONMENTS["dev"].model_dump() | scale)


@pytest.fixture(autouse=True)
def no_deadline_left_over():
    """A test that invokes a handler leaves its request's deadline set in this thread: later tests start without."""
    yield
    deadline.start_from(None)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> dict[str, SynthesizedStack]:
    """Every environment, and the scale stack (``scale_config``): one synth."""
    from stacks.app import build_app  # imports the provider bindings: once per session

    outdir = tmp_path_factory.mktemp("cdktf.out")
    environments = [*ENVIRONMENTS.values(), scale_config()]
    build_app(outdir=outdir, build_dir=REPO / "build" / "lambda", environments=environments).synth()
    stacks = {}
    for config in environments:
        directory = outdir / "stacks" / config.stack_id
        stacks[config.name] = SynthesizedStack(config, directory, json.loads((directory / "cdk.tf.json").read_text()))
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
