"""Synthesizes the payment ledger service's stacks into cdktf.out/ (`cdktf synth` runs this).

Every environment by default, each with its operator's configuration (stacks/config.py); PAYMENTS_ENVIRONMENTS
(comma-separated) picks some, e.g. `PAYMENTS_ENVIRONMENTS=dev cdktf synth` needs no operator file."""

import os
import sys

from stacks.config import (
    ENVIRONMENT_NAMES,
    check_shared_accounts,
    load_environment,
    operator_config_file,
    operator_settings,
)

if __name__ == "__main__":
    names = [name for name in os.environ.get("PAYMENTS_ENVIRONMENTS", ",".join(ENVIRONMENT_NAMES)).split(",") if name]
    try:
        unknown = sorted(set(names) - set(ENVIRONMENT_NAMES))
        if unknown:
            raise ValueError(f"no such environment: {', '.join(unknown)} (known: {', '.join(ENVIRONMENT_NAMES)})")
        operator = operator_settings(operator_config_file())  # read once
        environments = [load_environment(name, operator) for name in names]
        # Every environment that can be configured, synthesized now or not, agrees on its account's state.
        others = []
        for name in [name for name in ENVIRONMENT_NAMES if name not in names]:
            try:
                others.append(load_environment(name, operator))
            except ValueError:
                continue  # not configured: not deployable, so it shares no account stack
        check_shared_accounts([*environments, *others])
    except ValueError as error:
        sys.exit(f"synth refused: {error}")
    from stacks.app import build_app  # the provider bindings (~25 s): once the configuration holds

    build_app(environments).synth()
