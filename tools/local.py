"""`make local`: the dev stack deployed by real Terraform to a moto server on loopback.

Synthesizes the app, starts the emulator, applies the same synthesized dev
stack against it, prints what was built and waits; Ctrl-C destroys nothing by
hand: the emulator stops and the Terraform state, kept in a temporary
directory, goes with it (a state outliving its emulator makes the next apply hang).
"""

import os
import signal
import tempfile
import time
from pathlib import Path

from stacks.app import build_app
from stacks.config import ENVIRONMENTS
from tools.emulator import DEFAULT_PORT, emulator_environment, moto_server
from tools.terraform import TerraformWorkspace

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    port = int(os.environ.get("PAYMENTS_EMULATOR_PORT", DEFAULT_PORT))
    config = ENVIRONMENTS["dev"]
    started = time.monotonic()
    build_app().synth()
    stack_dir = REPO / "cdktf.out" / "stacks" / config.stack_id
    with tempfile.TemporaryDirectory(prefix="payments-local-") as state_dir, moto_server(port) as endpoint:
        print(f"emulator (moto server)  {endpoint}", flush=True)
        workspace = TerraformWorkspace.copy_of(stack_dir, Path(state_dir), emulator_environment(endpoint, config.region))
        workspace.init()
        workspace.apply(aws_endpoint_url=endpoint)
        for name, value in sorted(workspace.outputs().items()):
            print(f"{name:<22}  {value}")
        print(f"ready in {time.monotonic() - started:.0f} s; Ctrl-C stops everything", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("\nstopping", flush=True)


if __name__ == "__main__":
    main()
