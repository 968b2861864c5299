"""The cdktf app: one PaymentStack per configured environment."""

from collections.abc import Iterable
from pathlib import Path

from cdktf import App

from stacks.config import ENVIRONMENTS, EnvironmentConfig
from stacks.payment_stack import PaymentStack

ROOT = Path(__file__).resolve().parent.parent


def build_app(
    outdir: Path = ROOT / "cdktf.out",
    build_dir: Path = ROOT / "build" / "lambda",
    environments: Iterable[EnvironmentConfig] = ENVIRONMENTS.values(),
) -> App:
    app = App(outdir=str(outdir))
    for config in environments:
        PaymentStack(app, config.stack_id, config, build_dir)
    return app
