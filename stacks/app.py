"""The cdktf app: one PaymentStack per configured environment."""

from pathlib import Path

from cdktf import App

from stacks.config import ENVIRONMENTS
from stacks.payment_stack import PaymentStack

ROOT = Path(__file__).resolve().parent.parent


def build_app(outdir: Path = ROOT / "cdktf.out", build_dir: Path = ROOT / "build" / "lambda") -> App:
    app = App(outdir=str(outdir))
    for config in ENVIRONMENTS.values():
        PaymentStack(app, config.stack_id, config, build_dir)
    return app
