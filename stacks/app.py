"""The cdktf app: one PaymentStack per configured environment, after the AccountStack of its account and region."""

from collections.abc import Iterable
from pathlib import Path

from cdktf import App

from stacks.account_stack import AccountStack, AccountStackProps
from stacks.aws_target import AwsTargetProps
from stacks.config import RESOURCE_PREFIX, EnvironmentConfig, check_shared_accounts
from stacks.payment_stack import PaymentStack

ROOT = Path(__file__).resolve().parent.parent


def build_app(
    environments: Iterable[EnvironmentConfig],
    outdir: Path = ROOT / "cdktf.out",
    build_dir: Path = ROOT / "build" / "lambda",
) -> App:
    environments = list(environments)
    check_shared_accounts(environments)
    app = App(outdir=str(outdir))
    accounts: dict[str, AccountStack] = {}
    for config in environments:
        if config.account_stack_id not in accounts:
            # Its state where every environment of that account and region keeps its own: one bucket, or .state/.
            target = AwsTargetProps(
                config.account_id, config.region, f"{config.account_stack_id}.tfstate", config.state_bucket
            )
            sharing = [c for c in environments if c.account_stack_id == config.account_stack_id]
            subscriptions = {s for c in sharing for s in c.alarms.subscriptions}  # every one hears the trail's alarms
            administrators = {a for c in sharing for a in c.key_administrators}  # none uses the account's keys
            accounts[config.account_stack_id] = AccountStack(
                app,
                config.account_stack_id,
                AccountStackProps(
                    target, RESOURCE_PREFIX, tuple(sorted(subscriptions, key=str)), tuple(sorted(administrators))
                ),
            )
        PaymentStack(app, config.stack_id, config, build_dir).add_dependency(accounts[config.account_stack_id])
    return app
