"""Synthesizes the payment ledger service's stacks into cdktf.out/ (`cdktf synth` runs this).

By default every environment that is configured: dev as the repository sets it, and each other one once its operator's
file has its table (stacks/config.py). One not configured yet is skipped, in one line on stdout (where cdktf shows an
app's output). PAYMENTS_ENVIRONMENTS (comma-separated) names the environments to synthesize, and refuses one that
cannot be; so does a stack the cdktf CLI names as its target (CDKTF_TARGET_STACK_ID, where the CLI sets it). Otherwise
`cdktf deploy payments-prod` of a skipped prod finds no such stack."""

import os
import sys
from pathlib import Path
from typing import Any

from stacks.config import (
    ENVIRONMENT_NAMES,
    OPERATOR_CONFIG_VARIABLE,
    RESOURCE_PREFIX,
    EnvironmentConfig,
    check_shared_accounts,
    load_environment,
    operator_config_file,
    operator_settings,
)

ENVIRONMENTS_VARIABLE = "PAYMENTS_ENVIRONMENTS"
TARGET_STACK_VARIABLE = "CDKTF_TARGET_STACK_ID"
OUTDIR = Path(os.environ.get("CDKTF_OUTDIR", Path(__file__).resolve().parent / "cdktf.out"))  # the cdktf CLI sets it


def selected_environments(
    requested: str | None, operator: dict[str, dict[str, Any]], target_stack: str | None = None
) -> tuple[list[EnvironmentConfig], list[str]]:
    """The environments to synthesize, and those skipped as not configured. A named environment, one with a table in
    the operator's file, and the one whose stack a deploy targets, is synthesized or refused (ValueError), never
    skipped."""
    names = [name for name in (requested or "").split(",") if name] or list(ENVIRONMENT_NAMES)
    unknown = sorted(set(names) - set(ENVIRONMENT_NAMES))
    if unknown:
        raise ValueError(f"no such environment: {', '.join(unknown)} (known: {', '.join(ENVIRONMENT_NAMES)})")
    environments: list[EnvironmentConfig] = []
    skipped: list[str] = []
    for name in names:
        try:
            environments.append(load_environment(name, operator))
        except ValueError:
            if requested or name in operator or target_stack == f"{RESOURCE_PREFIX}{name}":
                raise
            skipped.append(name)
    # Every environment that is configured, synthesized now or not, agrees on its account's state.
    others: list[EnvironmentConfig] = []
    for name in [name for name in ENVIRONMENT_NAMES if name not in names]:
        try:
            others.append(load_environment(name, operator))
        except ValueError:
            continue  # not configured: not deployable, so it shares no account stack
    check_shared_accounts([*environments, *others])
    return environments, skipped


def skipped_line(skipped: list[str]) -> str:
    """One line: which environments were skipped, and where their operator configures them."""
    named = os.environ.get(OPERATOR_CONFIG_VARIABLE)
    if named is None:
        where = f"{operator_config_file()} or the file ${OPERATOR_CONFIG_VARIABLE} names"
    else:
        where = f"{named} (${OPERATOR_CONFIG_VARIABLE})" if named else f"the file ${OPERATOR_CONFIG_VARIABLE} names"
    tables = ", ".join(f"[{name}]" for name in skipped)
    stacks = " ".join(f"{RESOURCE_PREFIX}{name}" for name in skipped)
    return (
        f"synth: skipped {', '.join(skipped)} until its operator configures it: {tables} in {where} "
        f"(docs/operator.example.toml; docs/operating.md, 'Deploying'); until then `cdktf deploy {stacks}` "
        "finds no such stack"
    )


if __name__ == "__main__":
    try:
        operator = operator_settings(operator_config_file())  # read once
        environments, skipped = selected_environments(
            os.environ.get(ENVIRONMENTS_VARIABLE), operator, os.environ.get(TARGET_STACK_VARIABLE)
        )
    except ValueError as error:
        sys.exit(f"synth refused: {error}")
    if skipped:
        print(skipped_line(skipped), flush=True)
    from stacks.app import build_app  # the provider bindings (~25 s): once the configuration holds

    build_app(environments, outdir=OUTDIR).synth()
