"""`make local`: the whole service on loopback, deployed the way it deploys to AWS.

1. synthesizes the app (reused while its inputs are unchanged) while it starts the AWS emulator (moto) on 127.0.0.1
   and the Sparkle sandbox, each as its own process;
2. `terraform apply`s the same synthesized account and dev stacks against it (no resource is
   made by hand; the gateway secret's *value* is put, as an operator would);
3. prints, before ``ready:``, one ``start-up`` line per phase (synth, emulator, sandbox, init, each apply, the API)
   and the total;
4. issues each dev merchant's IAM user an access key in the emulator and writes
   them, with the merchant's API key (its usage plan's, deployed there), to
   .local/credentials (PAYMENTS_LOCAL_CREDENTIALS overrides the path), one
   profile per merchant;
5. serves the API at http://127.0.0.1:3000 with the real handlers in process,
   configured from the deployed functions' own environment, and boto3 pointed
   at the emulator; requests must be signed (SigV4, as API Gateway's AWS_IAM)
   with those keys and carry a merchant's API key, which throttles them at that
   merchant's own rate; handler logs go to the functions' log groups there.

6. runs the checkpoint function once, then every PAYMENTS_LOCAL_CHECKPOINT_SECONDS (10; deployed: every 5
   minutes), so GET /ledger/checkpoints/latest has a checkpoint from the start; it keeps each checkpoint's
   write-once copy in .local/checkpoints (PAYMENTS_LOCAL_CHECKPOINTS overrides the path), emptied of the last
   run's checkpoints at start, where `make verify` reads it.
7. runs the delivery function every PAYMENTS_LOCAL_DELIVER_SECONDS (1; deployed: every minute), with retry waits
   of seconds (``LOCAL_WEBHOOK_SETTINGS``), and lets webhook endpoints be http://127.0.0.1:<port>/ so that a
   developer's receiver gets events (never allowed deployed: the stack does not set it).
8. runs the settlement function every PAYMENTS_LOCAL_SETTLE_SECONDS (10; deployed: every hour), which imports
   what the sandbox settled (``POST /_sandbox/settle``); `make settle` runs one import at once (tools/settle.py);
   and the reconcile function every PAYMENTS_LOCAL_RECONCILE_SECONDS (10; deployed: every 5 minutes), which settles
   payments whose gateway answer was lost (a settlement waits for them).

Ports: PAYMENTS_API_PORT (3000), SPARKLE_PORT (4010), PAYMENTS_EMULATOR_PORT (5000).
PAYMENTS_LOCAL_THROTTLE=off lifts the stage's and the merchants' throttles (for benchmarks only).
Ctrl-C (or SIGTERM) stops everything it started; the Terraform state lives in a
temporary directory and goes with the emulator, so the next start is clean.
"""

import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3

from lambdas import bootstrap
from lambdas.logs import MaskingFormatter, logger
from lambdas.routes import Function
from sparkle_sandbox.server import DEFAULT_PORT as SANDBOX_PORT
from sparkle_sandbox.server import DEFAULT_SECRET_KEY
from stacks.config import DEV, OPERATOR_CONFIG_VARIABLE, EnvironmentConfig
from tools.emulator import DEFAULT_PORT as EMULATOR_PORT
from tools.emulator import emulator_environment, moto_server, sandbox_server
from tools.local_api import InvocationLogHandler, LocalApi, Schedule, TokenBucket
from tools.local_credentials import credentials_path, issue
from tools.terraform import STATE_FILE, TerraformWorkspace, apply_in_order

REPO = Path(__file__).resolve().parent.parent
ARCHIVE_VARIABLE = "PAYMENTS_LOCAL_CHECKPOINTS"  # the checkpoints' write-once copy (default .local/checkpoints)
READY = "ready:"  # the line that says the stack is up (the tests wait for it)
PHASE = "start-up"  # the lines that say how long each phase of the start took (tools.local_process reads them)
# Each listener: the variable that overrides its port, and its default port.
PORTS = {
    "api": ("PAYMENTS_API_PORT", 3000),
    "sandbox": ("SPARKLE_PORT", SANDBOX_PORT),
    "emulator": ("PAYMENTS_EMULATOR_PORT", EMULATOR_PORT),
}


def ports() -> dict[str, int]:
    return {name: int(os.environ.get(variable, default)) for name, (variable, default) in PORTS.items()}


class CloudWatchShipper:
    """Writes each invocation's log lines to its function's log group in the emulator."""

    def __init__(self, prefix: str) -> None:
        self.logs = boto3.client("logs")
        self.prefix = prefix
        self.stream = time.strftime("%Y/%m/%d/[$LATEST]local")
        self.ready: set[Function] = set()
        self.lock = threading.Lock()

    def __call__(self, function: Function, lines: list[str]) -> None:
        if not lines:
            return
        group = f"/aws/lambda/{self.prefix}-{function.value}"
        with self.lock:
            if function not in self.ready:
                self.logs.create_log_stream(logGroupName=group, logStreamName=self.stream)
                self.ready.add(function)
            now = int(time.time() * 1000)
            events = [{"timestamp": now, "message": line} for line in lines]
            self.logs.put_log_events(logGroupName=group, logStreamName=self.stream, logEvents=events)


def configure_functions(endpoint: str, region: str, function_name: str, sandbox_url: str) -> int:
    """This process becomes the functions' runtime: their deployed environment, boto3 at the emulator.
    Returns the deployed timeout (seconds), which bounds each local invocation."""
    os.environ.update(emulator_environment(endpoint, region))
    deployed = boto3.client("lambda").get_function_configuration(FunctionName=function_name)
    os.environ.update(deployed["Environment"]["Variables"])
    os.environ["GATEWAY_BASE_URL"] = sandbox_url  # the sandbox's port may differ from the config's default
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # no CloudWatch turns the EMF lines into metrics here
    os.environ["CHECKPOINT_ARCHIVE_DIR"] = str(archive_dir())  # the emulator enforces no Object Lock: a directory
    bootstrap.adapters.cache_clear()
    return deployed["Timeout"]


# The delivery settings `make local` runs with (lambdas.environment): loopback http endpoints, waits of seconds.
LOCAL_WEBHOOK_SETTINGS = {
    "WEBHOOK_LOOPBACK_HTTP": "1",
    "WEBHOOK_RETRY_WAITS": "1,2,4,8,15,30",
    "WEBHOOK_LEASE_SECONDS": "30",
}


def configure_delivery(function_name: str) -> None:
    """The delivery function's own settings (its dead-letter queue), and the local ones."""
    deployed = boto3.client("lambda").get_function_configuration(FunctionName=function_name)
    queue = deployed["Environment"]["Variables"].get("WEBHOOK_DEAD_LETTER_QUEUE")
    os.environ.update(LOCAL_WEBHOOK_SETTINGS | ({"WEBHOOK_DEAD_LETTER_QUEUE": queue} if queue else {}))
    bootstrap.adapters.cache_clear()


def scheduled_deliveries(timeout: float, on_invoke: "CloudWatchShipper") -> Schedule:
    """The delivery function, on its local schedule."""
    interval = float(os.environ.get("PAYMENTS_LOCAL_DELIVER_SECONDS", "1"))
    deliveries = Schedule(Function.DELIVER, interval, timeout, on_invoke)
    print(f"webhooks          delivered every {interval:g} s (http://127.0.0.1:<port>/ endpoints allowed)", flush=True)
    deliveries.start()
    return deliveries


def scheduled_settlements(timeout: float, on_invoke: CloudWatchShipper) -> list[Schedule]:
    """The settlement function and the reconcile function (a settlement waits for the payments it settles), on
    their local schedules."""
    settle_every = float(os.environ.get("PAYMENTS_LOCAL_SETTLE_SECONDS", "10"))
    reconcile_every = float(os.environ.get("PAYMENTS_LOCAL_RECONCILE_SECONDS", "10"))
    schedules = [
        Schedule(Function.SETTLE, settle_every, timeout, on_invoke),
        Schedule(Function.RECONCILE, reconcile_every, timeout, on_invoke),
    ]
    print(f"settlements       imported every {settle_every:g} s (`make settle`: one import now)", flush=True)
    print(f"reconciliation    every {reconcile_every:g} s", flush=True)
    for schedule in schedules:
        schedule.start()
    return schedules


def archive_dir() -> Path:
    """Where the checkpoint function keeps its write-once copy locally (what the bucket is deployed)."""
    return Path(os.environ.get(ARCHIVE_VARIABLE) or REPO / ".local" / "checkpoints")


def fresh_archive(root: Path) -> None:
    """The copy of the emulator's last ledger goes with it (each start is clean): its checkpoint files, and the
    merchants' directories they leave empty; nothing else in ``root`` is touched."""
    for path in root.glob("*/*.json"):
        if path.stem.isdigit():
            path.unlink()
    for directory in root.glob("*"):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    root.mkdir(parents=True, exist_ok=True)


def scheduled_checkpoints(timeout: float, on_invoke: CloudWatchShipper) -> Schedule:
    """The checkpoint function, run once now and then on its local schedule."""
    interval = float(os.environ.get("PAYMENTS_LOCAL_CHECKPOINT_SECONDS", "10"))
    checkpoints = Schedule(Function.CHECKPOINT, interval, timeout, on_invoke)
    print(f"checkpoints       {checkpoints.run_once()}   (then every {interval:g} s)", flush=True)
    checkpoints.start()
    return checkpoints


def print_first_call(merchant: str, credentials_file: Path, api_url: str) -> None:
    print(
        "\ntry (signed as merchant " + merchant + "):\n"
        f"  export AWS_SHARED_CREDENTIALS_FILE={credentials_file} AWS_PROFILE={merchant}"
        f" PAYMENTS_API_URL={api_url}\n"
        "  python -m client tokenize --number 4242424242424242 --exp-month 12 --exp-year 2030\n",
        flush=True,
    )


def throttles(config: EnvironmentConfig) -> tuple[TokenBucket | None, dict[str, TokenBucket]]:
    """The stage's bucket and each merchant's own (its usage plan's), or none with PAYMENTS_LOCAL_THROTTLE=off:
    benchmarks measure the service, not the limits."""
    if os.environ.get("PAYMENTS_LOCAL_THROTTLE") == "off":
        return None, {}
    rates = {merchant.id: config.merchant_rate(merchant) for merchant in config.merchants}
    return (
        TokenBucket(config.throttling.rate_limit, config.throttling.burst_limit),
        {merchant: TokenBucket(rate.rate_limit, rate.burst_limit) for merchant, rate in rates.items()},
    )


SYNTH_INPUTS = ("main.py", "cdktf.json", "Pipfile.lock", "stacks", "lambdas")  # all that a synth reads
SYNTH_CACHE = REPO / ".cache" / "synth"


def synth_digest() -> str:
    """What a synth of the repository's dev environment depends on: its inputs' contents, and the Python running it."""
    digest = hashlib.sha256(sys.version.encode())
    for name in SYNTH_INPUTS:
        root = REPO / name
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{path.relative_to(REPO)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def synthesized_stacks(config: EnvironmentConfig) -> Path:
    """``config``'s stacks as `main.py` synthesizes them, made once per state of their inputs (``synth_digest``) in
    .cache/synth: a restart, or a second run at once, reuses them (one synthesizes, the other waits for it)."""
    SYNTH_CACHE.mkdir(parents=True, exist_ok=True)
    directory = SYNTH_CACHE / f"{config.name}-{synth_digest()}"
    with (SYNTH_CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (directory / "done").exists():
            for stale in SYNTH_CACHE.glob(f"{config.name}-*"):
                shutil.rmtree(stale)
            directory.mkdir()
            # In a child process: the provider bindings (~1.1 GB, a Node runtime) are not needed once synthesized.
            # The repository's environment alone: the operator's file (for deployments) plays no part in the emulator.
            environment = os.environ | {
                "PAYMENTS_ENVIRONMENTS": config.name,
                OPERATOR_CONFIG_VARIABLE: "",
                "CDKTF_OUTDIR": str(directory / "cdktf.out"),
            }
            subprocess.run(
                [sys.executable, "main.py"], cwd=REPO, check=True, stdout=subprocess.DEVNULL, env=environment
            )
            (directory / "done").touch()
    return directory / "cdktf.out" / "stacks"


class StartupPhases:
    """How long each phase of the start took (synth and emulator side by side, the two applies partly so), printed
    before ``READY`` so that a slower start shows where it went."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.seconds[name] = time.monotonic() - started

    def add_terraform(self, workspaces: list[TerraformWorkspace]) -> None:
        self.seconds["terraform init"] = max(workspace.seconds["init"] for workspace in workspaces)
        for workspace in workspaces:
            self.seconds[f"terraform apply {workspace.directory.name}"] = workspace.seconds["apply"]

    def total(self) -> float:
        return time.monotonic() - self.started

    def report(self) -> None:
        for name, seconds in [*self.seconds.items(), ("total (some phases run side by side)", self.total())]:
            print(f"{PHASE} {seconds:6.1f} s  {name}", flush=True)


def start_emulators(
    running: ExitStack, config: EnvironmentConfig, port: dict[str, int], phases: StartupPhases
) -> tuple[Path, str, str]:
    """The synthesized stacks, the emulator and the sandbox, started side by side; returns the stacks' directory, the
    emulator's endpoint and the sandbox's URL."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        synthesizing = pool.submit(timed_synth, config, phases)
        with phases.phase("emulator"):
            endpoint = running.enter_context(moto_server(port["emulator"]))
        print(f"emulator (moto)   {endpoint}", flush=True)
        with phases.phase("sandbox"):
            sandbox_url = running.enter_context(sandbox_server(port["sandbox"]))
        print(f"sparkle sandbox   {sandbox_url}", flush=True)
        return synthesizing.result(), endpoint, sandbox_url


def timed_synth(config: EnvironmentConfig, phases: StartupPhases) -> Path:
    with phases.phase("synth"):
        return synthesized_stacks(config)


def deploy(
    running: ExitStack, config: EnvironmentConfig, port: dict[str, int], phases: StartupPhases
) -> tuple[dict[str, Any], str, str]:
    """The stacks applied to a fresh emulator, its state in a temporary directory that goes with it: the payment
    stack's outputs, the emulator's endpoint and the sandbox's URL."""
    state_dir = Path(running.enter_context(tempfile.TemporaryDirectory(prefix="payments-local-")))
    stacks_dir, endpoint, sandbox_url = start_emulators(running, config, port, phases)
    stack_dirs = [stacks_dir / config.account_stack_id, stacks_dir / config.stack_id]  # the account's first
    environment = emulator_environment(endpoint, config.region)
    workspaces = apply_in_order(stack_dirs, state_dir, endpoint, environment)
    phases.add_terraform(workspaces)
    print(f"terraform state   {workspaces[-1].directory / STATE_FILE}", flush=True)
    return workspaces[-1].outputs(), endpoint, sandbox_url


def serve(
    running: ExitStack,
    config: EnvironmentConfig,
    api_port: int,
    endpoint: str,
    sandbox_url: str,
    outputs: dict[str, Any],
) -> None:
    """This process as the deployed functions: the API on ``api_port`` and the scheduled functions, each stopped by
    ``running``."""
    timeout = configure_functions(endpoint, config.region, config.function_name(Function.CHARGE.value), sandbox_url)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=outputs["gateway_secret_id"], SecretString=DEFAULT_SECRET_KEY
    )
    capture = InvocationLogHandler()
    capture.setFormatter(MaskingFormatter())
    logging.getLogger(logger.service).addHandler(capture)
    throttle, merchant_throttles = throttles(config)
    shipper = CloudWatchShipper(config.prefix)
    credentials_file = credentials_path()
    issued = issue(config, credentials_file, outputs["merchant_api_key_ids"])
    print(f"credentials       {credentials_file}   (one profile per merchant)", flush=True)
    fresh_archive(archive_dir())
    print(f"checkpoint copy   {archive_dir()}   (write-once; `make verify` reads it)", flush=True)
    running.callback(scheduled_checkpoints(timeout, shipper).stop)
    configure_delivery(config.function_name(Function.DELIVER.value))
    running.callback(scheduled_deliveries(timeout, shipper).stop)
    for schedule in scheduled_settlements(timeout, shipper):
        running.callback(schedule.stop)
    api = LocalApi(
        api_port,
        throttle,
        timeout,
        issued,
        config.region,
        on_invoke=shipper,
        api_keys={credential.api_key: credential.merchant for credential in issued.values()},
        merchant_throttles=merchant_throttles,
        api_key_ids={c.api_key: outputs["merchant_api_key_ids"][c.merchant] for c in issued.values()},
    )
    running.callback(api.server_close)
    running.callback(api.shutdown)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    api_url = f"http://127.0.0.1:{api_port}"
    print(f"payment API       {api_url}   (OpenAPI: {api_url}/openapi.json)", flush=True)
    print(f"ledger table      {outputs['ledger_table']}", flush=True)
    print_first_call(config.merchants[0].id, credentials_file, api_url)


def main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even where a shell started us ignoring it
    config = DEV
    port = ports()
    phases = StartupPhases()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ExitStack() as running:
        outputs, endpoint, sandbox_url = deploy(running, config, port, phases)
        with phases.phase("API (functions configured, credentials, schedules)"):
            serve(running, config, port["api"], endpoint, sandbox_url, outputs)
        phases.report()
        print(f"{READY} {phases.total():.1f} s; Ctrl-C stops everything", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        print("stopping", flush=True)


if __name__ == "__main__":
    main()
