"""`make settle`: one settlement import now, against a running `make local` (which also runs one every
PAYMENTS_LOCAL_SETTLE_SECONDS): the settlement function's handler, run in this process as Lambda would run it on
its schedule, configured from the function as deployed in the emulator, with the sandbox as its gateway. It imports
what the sandbox has settled (``POST /_sandbox/settle`` makes a settlement of everything not yet settled) and prints
the run's counts as JSON. A run beside the scheduled one is safe: each line is booked once, whichever run gets it.

Ports: PAYMENTS_EMULATOR_PORT (5000), SPARKLE_PORT (4010), as `make local` was started with. Exit 1 when no
`make local` answers there, or the run counted errors (its log lines name them)."""

import json
import sys

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.routes import Function
from stacks.config import DEV
from tools.api_events import LambdaContext, function_handler
from tools.local import configure_functions, ports


def main() -> int:
    port = ports()
    emulator = f"http://127.0.0.1:{port['emulator']}"
    try:
        timeout = configure_functions(
            emulator, DEV.region, DEV.function_name(Function.SETTLE.value), f"http://127.0.0.1:{port['sandbox']}"
        )
    except (BotoCoreError, ClientError) as error:
        print(f"no `make local` answers at {emulator} ({error}): start it first", file=sys.stderr)
        return 1
    counts = function_handler(Function.SETTLE)({"source": "aws.events"}, LambdaContext(timeout))
    print(json.dumps(counts, sort_keys=True))
    return 1 if counts["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
