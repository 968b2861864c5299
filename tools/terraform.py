"""Terraform runs on a synthesized stack, offline from a provider mirror when one exists.

``TF_PLUGIN_MIRROR`` names the mirror (default ``/opt/tf-plugins``, the layout of
``terraform providers mirror``); where it does not exist, ``terraform init``
downloads the provider as usual.
"""

import json
import os
import shutil
import subprocess
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3

DEFAULT_PLUGIN_MIRROR = "/opt/tf-plugins"
STATE_FILE = "terraform.tfstate"  # a workspace copy's own state
# Operations at once in an apply (Terraform's default: 10). The provider's waiters (a KMS key's ~10 s, a queue's
# ~25 s, a lifecycle rule's ~55 s) hold their slot while they sleep; more slots let the quick resources pass them.
APPLY_PARALLELISM = 32


def plugin_mirror() -> Path | None:
    mirror = Path(os.environ.get("TF_PLUGIN_MIRROR", DEFAULT_PLUGIN_MIRROR))
    return mirror if mirror.is_dir() else None


@dataclass
class TerraformWorkspace:
    """A copy of one synthesized stack that Terraform runs in, with its own state."""

    directory: Path
    environment: dict[str, str] | None = None
    # The wall seconds spent in each command (init, apply, ...).
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @classmethod
    def copy_of(cls, stack_dir: Path, directory: Path, environment: dict[str, str] | None = None):
        """A copy whose state is its own (``terraform.tfstate`` in ``directory``), whatever backend the stack names:
        tests and `make local` never touch a deployment's state."""
        shutil.copytree(stack_dir, directory, dirs_exist_ok=True)
        config_file = directory / "cdk.tf.json"
        config = json.loads(config_file.read_text())
        config["terraform"]["backend"] = {"local": {"path": STATE_FILE}}
        config_file.write_text(json.dumps(config, indent=2))
        return cls(directory, environment)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        started = time.monotonic()
        result = subprocess.run(
            ["terraform", *args, "-no-color"],
            cwd=self.directory,
            env={**(self.environment or os.environ), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,  # a failure is raised below with Terraform's output
        )
        self.seconds[args[0]] += time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"terraform {args[0]} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def init(self) -> None:
        mirror = plugin_mirror()
        self.run("init", "-input=false", *([f"-plugin-dir={mirror}"] if mirror else []))

    def apply(self, **variables: str) -> None:
        self.run(
            "apply",
            "-auto-approve",
            "-input=false",
            f"-parallelism={APPLY_PARALLELISM}",
            *(f"-var={k}={v}" for k, v in variables.items()),
        )

    def config(self) -> dict:
        return json.loads((self.directory / "cdk.tf.json").read_text())

    def destroy(self, **variables: str) -> None:
        self.run("destroy", "-auto-approve", "-input=false", *(f"-var={k}={v}" for k, v in variables.items()))

    def outputs(self) -> dict[str, str]:
        raw = json.loads(self.run("output", "-json").stdout)
        return {name: output["value"] for name, output in raw.items()}


# Data sources that read no resource of another stack.
SELF_CONTAINED_DATA = {
    "aws_caller_identity",
    "aws_iam_policy_document",
    "aws_partition",
    "aws_region",
    "aws_service_principal",
}


def aliases_read(config: dict, earlier: dict) -> list[str] | None:
    """The KMS aliases made by the stack ``earlier`` that the data sources of ``config`` read; None when a data
    source is of a kind not matched here (``config`` then waits for all of ``earlier``)."""
    aliases = {body["name"] for body in earlier.get("resource", {}).get("aws_kms_alias", {}).values()}
    read = []
    for data_type, sources in config.get("data", {}).items():
        if data_type in SELF_CONTAINED_DATA:
            continue
        if data_type != "aws_kms_key" or any(body.get("key_id") not in aliases for body in sources.values()):
            return None
        read += [body["key_id"] for body in sources.values()]
    return read


def wait_for_aliases(aliases: list[str], applying: "Future[None]", endpoint: str, environment: dict[str, str]) -> None:
    """Returns once each of ``aliases`` exists in the emulator at ``endpoint`` (or ``applying``, the apply that
    makes them, has ended); raises what that apply raised."""
    kms = boto3.client(
        "kms",
        endpoint_url=endpoint,
        region_name=environment["AWS_DEFAULT_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
    )
    while not applying.done():
        made = {
            alias["AliasName"] for page in kms.get_paginator("list_aliases").paginate() for alias in page["Aliases"]
        }
        if made.issuperset(aliases):
            return
        time.sleep(0.5)
    applying.result()


def apply_in_order(
    stack_dirs: list[Path], directory: Path, endpoint: str, environment: dict[str, str]
) -> list[TerraformWorkspace]:
    """Each synthesized stack copied under ``directory`` (its state there too) and applied to the emulator at
    ``endpoint``, in the order given: an account stack before the environments that depend on it.

    A stack's apply starts as soon as what it reads of the stack before it exists (``aliases_read``, watched for in
    the emulator while that stack's apply runs): one apply per stack, and Terraform's waiters (an S3 lifecycle rule
    alone waits ~55 s) overlap."""
    workspaces = [TerraformWorkspace.copy_of(d, directory / d.name, environment) for d in stack_dirs]
    with ThreadPoolExecutor(max_workers=len(workspaces)) as pool:
        for initialized in [pool.submit(workspace.init) for workspace in workspaces]:  # side by side
            initialized.result()
        applying: list[Future] = []
        for workspace, later in zip(workspaces, [*workspaces[1:], None], strict=True):
            read = aliases_read(later.config(), workspace.config()) if later else []
            if read is None:
                workspace.apply(aws_endpoint_url=endpoint)
                continue
            applying.append(pool.submit(workspace.apply, aws_endpoint_url=endpoint))
            if read:
                wait_for_aliases(read, applying[-1], endpoint, environment)
        for running in applying:
            running.result()
    return workspaces
