"""Fixtures for the service: AWS in-process (moto), the Sparkle sandbox as a real process."""

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
import requests
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from moto import mock_aws

from lambdas import bootstrap
from lambdas.logs import logger
from lambdas.storage_schema import LEDGER, Partition
from tests.support.fakes import MERCHANT_A, MERCHANT_B, FakeWorld, fake_world
from tests.support.fakes_gateway import FakeGateway, Fault
from tests.support.leaks import card_data_in, card_data_in_item
from tools.emulator import EMULATOR_CREDENTIALS, free_port, sandbox_server
from tools.function_resources import create_keys, provision

REGION = "us-east-1"
NO_GATEWAY_URL = "http://127.0.0.1:9"  # discard port: for tests whose gateway is not Sparkle
SLOW_CARD_DELAY = 3.0  # seconds; the client's read timeout in tests is shorter


@pytest.fixture
def gateway() -> FakeGateway:
    """The in-memory Sparkle (tests.support.fakes_gateway)."""
    return FakeGateway()


@pytest.fixture
def world(gateway) -> FakeWorld:
    """Merchant A's service on in-memory fakes (tests.support.fakes), charging through ``gateway``."""
    return fake_world(gateway)


@pytest.fixture(scope="session")
def sandbox_url():
    with sandbox_server(free_port(), "--slow-card-delay", str(SLOW_CARD_DELAY)) as url:
        yield url


@pytest.fixture
def sandbox(sandbox_url):
    """The sandbox, emptied and without faults for each test."""
    sandbox = Sandbox(sandbox_url)
    sandbox.reset()
    return sandbox


# The sandbox's fault setting that makes each of the fake gateway's faults happen.
FAULT_SETTINGS = {
    Fault.UNAVAILABLE: "error_rate",
    Fault.LOST: "drop_rate",
    Fault.GARBAGE: "garbage_rate",
    Fault.SLOW: "slow_rate",
}


class Sandbox:
    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        """No charges, no refunds, the faults it started with (none)."""
        requests.post(f"{self.url}/_sandbox/reset", timeout=5)

    def charges(self) -> list[dict]:
        return requests.get(f"{self.url}/_sandbox/charges", timeout=5).json()["data"]

    def refunds(self) -> list[dict]:
        return requests.get(f"{self.url}/_sandbox/refunds", timeout=5).json()["data"]

    @contextmanager
    def failing(self, fault: Fault):
        """Every request meets ``fault`` until the block ends (drop, garbage and slow apply to POSTs only)."""
        setting = FAULT_SETTINGS[fault]
        self.faults(**{setting: 1.0})
        try:
            yield
        finally:
            self.faults(**{setting: 0.0})

    def faults(self, **settings) -> None:
        requests.post(f"{self.url}/_sandbox/faults", json=settings, timeout=5)

    def advance_clock(self, seconds: int) -> None:
        """The sandbox's clock moves on: its authorisations expire as if that much time had passed."""
        requests.post(f"{self.url}/_sandbox/clock", json={"advance": seconds}, timeout=5).raise_for_status()

    def settle(self, **faults) -> list[dict]:
        """A settlement of everything not yet settled, one per currency (``faults``: ``drop``, ``adjust``,
        ``unknown`` as ``POST /_sandbox/settle`` takes them); none when nothing was left to settle."""
        answer = requests.post(f"{self.url}/_sandbox/settle", json=faults, timeout=5)
        answer.raise_for_status()
        if answer.status_code == 204:
            return []
        made = answer.json()
        return made.get("data", [made])


class UnmaskedLogs(logging.Handler):
    """The service's log records, serialized as Powertools writes them but not masked, so a scan of them tests
    the first line of defence (no card data is passed to a log call), not the masking formatter behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(LambdaPowertoolsFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def card_data(self) -> list[str]:
        return card_data_in("\n".join(self.lines))

    def errors(self) -> list[dict]:
        """The records logged at level ERROR, as Powertools serialized them."""
        return [record for record in map(json.loads, self.lines) if record["level"] == "ERROR"]


@contextmanager
def unmasked_service_logs():
    capture = UnmaskedLogs()
    std_logger = logging.getLogger(logger.service)
    std_logger.addHandler(capture)
    try:
        yield capture
    finally:
        std_logger.removeHandler(capture)


@pytest.fixture
def captured_logs():
    """Every log record the service writes during a test, before masking; none may carry card data."""
    with unmasked_service_logs() as capture:
        yield capture
    assert capture.card_data() == [], "card data passed to a log call"


SERVICE_RULES = {"velocity_per_hour": 5, "max_amount": {"USD": 1_000_000}, "blocked_fingerprints": []}


class MotoWorld:
    """moto in this process, one for the session: its KMS keys are made once (each makes a key pair) and one boto3
    session keeps the service models it loaded. Each test gets tables, a bucket and a secret of its own.

    moto is started for each test and stopped after it, keeping its data, so a test that starts a moto of its
    own (``mock_aws``) still starts on an empty one; the keys are made again when such a test emptied moto."""

    def __init__(self) -> None:
        self.session: boto3.Session | None = None
        self.keys: dict[str, str] = {}

    @contextmanager
    def entered(self, monkeypatch) -> Iterator[dict[str, str]]:
        """moto running, with the session's boto3 session and keys; yields the keys."""
        mock = mock_aws(config={"core": {"reset_boto3_session": False}})
        mock.start(reset=False)
        try:
            self.session = self.session or boto3.Session()
            monkeypatch.setattr(boto3, "DEFAULT_SESSION", self.session)
            if not self._keys_kept():
                self.keys = create_keys()
            yield self.keys
        finally:
            mock.stop(remove_data=False)

    def _keys_kept(self) -> bool:
        """False before the first test, and after a test's own moto emptied this one."""
        if not self.keys:
            return False
        kms = boto3.client("kms")
        try:
            return all(kms.describe_key(KeyId=key)["KeyMetadata"]["Enabled"] for key in self.keys.values())
        except kms.exceptions.NotFoundException:
            return False


@pytest.fixture(scope="session")
def moto_world() -> MotoWorld:
    return MotoWorld()


@contextmanager
def functions_in_moto(
    world: MotoWorld, monkeypatch, gateway_url: str, rules: dict | None = None
) -> Iterator[dict[str, str]]:
    """moto in process with the emulator's credentials; the functions' tables, keys and secret made there, and
    merchants A and B with ``rules``. Yields the environment naming them."""
    for name, value in EMULATOR_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with world.entered(monkeypatch) as keys:
        merchants = {"merchant-a": ((MERCHANT_A,), rules or {}), "merchant-b": ((MERCHANT_B,), rules or {})}
        yield provision(gateway_url, suffix=uuid.uuid4().hex[:6], merchants=merchants, keys=keys)


@pytest.fixture
def moto_resources(moto_world, monkeypatch) -> Iterator[dict[str, str]]:
    """The functions' AWS resources in moto, for adapter tests that call no gateway."""
    with functions_in_moto(moto_world, monkeypatch, NO_GATEWAY_URL) as env:
        yield env


@pytest.fixture
def aws_env(moto_world, sandbox, monkeypatch, captured_logs):
    """Tables, keys and the gateway secret in moto; the function environment set as in Lambda.

    On teardown every stored item is scanned: no test may leave card data in plain text."""
    with functions_in_moto(moto_world, monkeypatch, sandbox.url, SERVICE_RULES) as resources:
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        env = resources | {"GATEWAY_READ_TIMEOUT": "1"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        bootstrap.adapters.cache_clear()
        yield env
        bootstrap.adapters.cache_clear()
        for table in (env["LEDGER_TABLE"], env["IDEMPOTENCY_TABLE"]):
            for item in dynamodb.scan(TableName=table)["Items"]:
                assert card_data_in_item(item) == [], f"card data stored in {table}"
        for item in dynamodb.scan(TableName=env["LEDGER_TABLE"])["Items"]:  # only events expire from the ledger
            expires = LEDGER.ttl_attribute in item
            assert not expires or item["pk"]["S"].startswith(Partition.EVENT.value), item["pk"]


@pytest.fixture
def atomic_requests(monkeypatch):
    """Each emulated AWS request runs alone, as each DynamoDB request is atomic in AWS.

    moto's in-process backends are not thread-safe (a transaction deep-copies a
    table another thread is writing). Only single requests are serialized: the
    threads still interleave between requests, which is where races live."""
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.Lock()
    unsafe = BotocoreStubber.process_request

    def process_request(self, request):
        with lock:
            return unsafe(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
