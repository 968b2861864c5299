"""A moto server on loopback, run as its own process, standing in for AWS."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

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
def moto_server(port: int = DEFAULT_PORT, log_file: Path | None = None) -> Iterator[str]:
    """Start moto's server (requests made atomic: tools/moto_atomic.py) on 127.0.0.1:port;
    yield its URL; stop it on exit."""
    if log_file:
        output = open(log_file, "ab")
    else:
        output = subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.moto_atomic", HOST, str(port)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://{HOST}:{port}"
    try:
        _wait_until_up(endpoint, process)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_file:
            output.close()


def _wait_until_up(endpoint: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode} before it served {endpoint}")
        try:
            requests.get(f"{endpoint}/moto-api/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise TimeoutError(f"moto_server did not answer on {endpoint} within {timeout} s")
