"""What a token payment, and each step of a two-step one, costs in AWS requests, as `make bench` measures it over 100
payments (tools/bench_service.py, whose counting this reuses over a handful; docs/benchmarks.md): after a container's
first request, each token payment with metadata, the velocity rule on, makes exactly 3 DynamoDB requests and no KMS
call, and so does each authorisation, capture and cancel."""

import os
from collections import Counter
from collections.abc import Callable
from unittest import mock

import pytest

from lambdas import bootstrap
from tools.bench_service import requests_to, token_payment_calls, two_step_calls
from tools.emulator import EMULATOR_CREDENTIALS

PAYMENTS = 4
AUTHORISATIONS = 6  # captured (two of them in full, one in part) or cancelled (three) in turn


@pytest.fixture
def measure(sandbox, monkeypatch, captured_logs) -> Callable:
    """Runs a bench counting against the sandbox and moto in process, with the functions' environment it sets."""
    for name, value in (EMULATOR_CREDENTIALS | {"AWS_DEFAULT_REGION": "us-east-1"}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    def run(counting: Callable, count: int):
        try:
            with mock.patch.dict(os.environ):  # the functions' environment the bench sets goes with them
                return counting(sandbox.url, count)
        finally:
            bootstrap.adapters.cache_clear()  # adapters bound to the moto that is gone

    return run


def _costs(calls: list[Counter]) -> list[tuple[int, int]]:
    return [(requests_to(counted, "dynamodb"), requests_to(counted, "kms")) for counted in calls]


def test_a_token_payment_after_a_containers_first_makes_3_dynamodb_requests_and_no_kms_call(measure):
    first, *later = measure(token_payment_calls, PAYMENTS)
    assert requests_to(first, "dynamodb") > 3  # the first also looks its caller's merchant up
    assert _costs(later) == [(3, 0)] * (PAYMENTS - 1), later


def test_each_step_of_a_two_step_payment_after_a_containers_first_makes_3_dynamodb_requests_and_no_kms_call(measure):
    steps = measure(two_step_calls, AUTHORISATIONS)
    authorised, captured, cancelled = steps["authorise"], steps["capture"], steps["cancel"]
    assert (len(authorised), len(captured), len(cancelled)) == (AUTHORISATIONS, 3, 3)
    # each function's first request, in a fresh container, also looks its caller's merchant up and opens data keys
    for first in (authorised[0], captured[0]):
        assert requests_to(first, "dynamodb") > 3 and requests_to(first, "kms") > 0, first
    assert _costs(authorised[1:]) == [(3, 0)] * (AUTHORISATIONS - 1), authorised
    assert _costs(captured[1:] + cancelled) == [(3, 0)] * 5, steps
    # the payment with its chain's head in one read; the claim, then the booking, each one transaction
    assert captured[1] == cancelled[0] == Counter({("dynamodb", "BatchGetItem"): 1,
                                                   ("dynamodb", "TransactWriteItems"): 2})  # fmt: skip
