"""`make local` as a child process on free ports: started, waited for, stopped
with the signal Ctrl-C sends. Used by the end-to-end tests and `make bench-local`."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3

from client import PaymentsClient, SigV4
from stacks.config import DEV
from tools.emulator import EMULATOR_CREDENTIALS, free_port
from tools.local import ARCHIVE_VARIABLE, PHASE, PORTS, READY
from tools.local_credentials import CREDENTIALS_VARIABLE

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 600


class LocalProcess:
    def __init__(self, ports: dict[str, int] | None = None, **environment: str) -> None:
        """``ports``: the port of each listener by the variable that sets it (default: free ports)."""
        self.ports = ports or {variable: free_port() for variable, _ in PORTS.values()}
        own = Path(tempfile.mkdtemp(prefix="payments-local-"))
        self.credentials = own / "credentials"
        self.checkpoints = own / "checkpoints"  # the checkpoints' write-once copy, this process's own
        self.environment = {
            CREDENTIALS_VARIABLE: str(self.credentials),
            ARCHIVE_VARIABLE: str(self.checkpoints),
            **environment,
        }
        self.merchants = [merchant.id for merchant in DEV.merchants]
        url = {name: f"http://127.0.0.1:{self.ports[variable]}" for name, (variable, _) in PORTS.items()}
        self.api, self.sandbox, self.emulator = url["api"], url["sandbox"], url["emulator"]
        self.output: list[str] = []
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait until it is ready; return how long that took."""
        started = time.monotonic()
        env = {**os.environ, **{k: str(v) for k, v in self.ports.items()}, **self.environment}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.local"],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith(READY):
                # Keep reading: a child whose output pipe fills up blocks on its next log line.
                self.reader = threading.Thread(target=self._drain, daemon=True)
                self.reader.start()
                return time.monotonic() - started
            if time.monotonic() - started > START_TIMEOUT:
                break
        self.process.kill()
        raise RuntimeError("make local did not become ready:\n" + "".join(self.output[-40:]))

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        returncode = self.process.wait(timeout=60)
        self.reader.join(timeout=10)
        return returncode

    def auth(self, merchant: str | None = None) -> SigV4:
        """Signs as ``merchant`` (default: the first dev merchant) with the key `make local` issued it."""
        return SigV4.from_chain(merchant or self.merchants[0], credentials_file=str(self.credentials))

    def client(self, merchant: str | None = None, **options) -> PaymentsClient:
        return PaymentsClient(self.api, self.auth(merchant), **options)

    def aws(self, service: str):
        credentials = {k.lower(): v for k, v in EMULATOR_CREDENTIALS.items()}
        return boto3.client(service, endpoint_url=self.emulator, region_name="us-east-1", **credentials)

    def bound_ports(self) -> list[int]:
        bound = []
        for port in self.ports.values():
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    bound.append(port)
        return bound

    def startup_phases(self) -> list[str]:
        """Where the start's time went, as it printed it: one line per phase, then the total."""
        return [line.removeprefix(PHASE).rstrip() for line in self.output if line.startswith(PHASE)]

    def state_file(self) -> Path:
        (line,) = [line for line in self.output if line.startswith("terraform state")]
        return Path(line.split(maxsplit=2)[2].strip())
