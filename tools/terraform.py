"""Terraform runs on a synthesized stack, offline from a provider mirror when one exists.

``TF_PLUGIN_MIRROR`` names the mirror (default ``/opt/tf-plugins``, the layout of
``terraform providers mirror``); where it does not exist, ``terraform init``
downloads the provider as usual.
"""

import json
import os
import shutil
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PLUGIN_MIRROR = "/opt/tf-plugins"
STATE_FILE = "terraform.tfstate"  # a workspace copy's own state


def plugin_mirror() -> Path | None:
    mirror = Path(os.environ.get("TF_PLUGIN_MIRROR", DEFAULT_PLUGIN_MIRROR))
    return mirror if mirror.is_dir() else None


@dataclass
class TerraformWorkspace:
    """A copy of one synthesized stack that Terraform runs in, with its own state."""

    directory: Path
    environment: dict[str, str] | None = None

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
        result = subprocess.run(
            ["terraform", *args, "-no-color"],
            cwd=self.directory,
            env={**(self.environment or os.environ), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,  # a failure is raised below with Terraform's output
        )
        if result.returncode != 0:
            raise RuntimeError(f"terraform {args[0]} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def init(self) -> None:
        mirror = plugin_mirror()
        self.run("init", "-input=false", *([f"-plugin-dir={mirror}"] if mirror else []))

    def apply(self, *targets: str, **variables: str) -> None:
        """Everything, or only ``targets`` (resource addresses) and what they depend on."""
        self.run(
            "apply",
            "-auto-approve",
            "-input=false",
            *(f"-target={target}" for target in targets),
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


def resources_read(config: dict, earlier: dict) -> list[str] | None:
    """The resources of the stack ``earlier`` that the data sources of ``config`` read, as ``-target`` addresses;
    None when a data source is of a kind not matched here (``config`` then waits for all of ``earlier``)."""
    aliases = {
        body["name"]: f"aws_kms_alias.{name}"
        for name, body in earlier.get("resource", {}).get("aws_kms_alias", {}).items()
    }
    targets = []
    for data_type, sources in config.get("data", {}).items():
        if data_type in SELF_CONTAINED_DATA:
            continue
        if data_type != "aws_kms_key" or any(body.get("key_id") not in aliases for body in sources.values()):
            return None
        targets += [aliases[body["key_id"]] for body in sources.values()]
    return targets


def apply_in_order(
    stack_dirs: list[Path], directory: Path, endpoint: str, environment: dict[str, str]
) -> list[TerraformWorkspace]:
    """Each synthesized stack copied under ``directory`` (its state there too) and applied to the emulator at
    ``endpoint``, in the order given: an account stack before the environments that depend on it.

    A stack's apply starts once what it reads of the stack before it exists (``resources_read``, applied first
    with ``-target``); the rest of the stack before it is applied alongside. Terraform's waiters (an S3 lifecycle
    rule alone waits ~55 s) then overlap."""
    workspaces = [TerraformWorkspace.copy_of(d, directory / d.name, environment) for d in stack_dirs]
    with ThreadPoolExecutor(max_workers=len(workspaces)) as pool:
        applying: list[Future] = []
        for workspace, later in zip(workspaces, [*workspaces[1:], None], strict=True):
            workspace.init()
            read = resources_read(later.config(), workspace.config()) if later else []
            if read is None:
                workspace.apply(aws_endpoint_url=endpoint)
                continue
            if read:
                workspace.apply(*read, aws_endpoint_url=endpoint)
            applying.append(pool.submit(workspace.apply, aws_endpoint_url=endpoint))
        for running in applying:
            running.result()
    return workspaces
