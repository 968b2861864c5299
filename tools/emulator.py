"""The local stand-ins, each run as its own process on loopback: moto for AWS, the sandbox for Sparkle."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_PORT = 5000
# Credentials the emulator accepts; real runs take theirs from the environment as usual.
EMULATOR_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def emulator_environment(endpoint: str, region: str) -> dict[str, str]:
    """Environment for a process (boto3, Terraform) that should talk to the emulator only."""
    return {**os.environ, **EMULATOR_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": region}


@contextmanager
def server_process(command: list[str], url: str, probe_path: str) -> Iterator[str]:
    """Run ``command`` (a server) as a child process; yield ``url`` once ``probe_path`` answers; stop it on exit."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(f"{url}{probe_path}", process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def moto_server(port: int = DEFAULT_PORT):
    """moto's server (requests made atomic: tools/moto_atomic.py) on 127.0.0.1:port."""
    command = [sys.executable, "-m", "tools.moto_atomic", HOST, str(port)]
    return server_process(command, f"http://{HOST}:{port}", "/moto-api/")


def sandbox_server(port: int, *options: str):
    """The Sparkle sandbox on 127.0.0.1:port (``options``: see ``python -m sparkle_sandbox --help``)."""
    command = [sys.executable, "-m", "sparkle_sandbox", "--port", str(port), *options]
    return server_process(command, f"http://{HOST}:{port}", "/_sandbox/faults")


def _wait_until_up(probe: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[2]} exited with {process.returncode} before it answered {probe}")
        try:
            requests.get(probe, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise TimeoutError(f"{process.args[2]} did not answer {probe} within {timeout} s")
