"""What a token payment costs in AWS requests, as docs/benchmarks.md states and `make bench` measures it over 100
payments (tools/bench_service.py, whose counting this reuses over a handful): after a container's first payment, each
token payment with metadata, the velocity rule on, makes exactly 3 DynamoDB requests and no KMS call."""

import os
from unittest import mock

from lambdas import bootstrap
from tools.bench_service import requests_to, token_payment_calls
from tools.emulator import EMULATOR_CREDENTIALS

PAYMENTS = 4


def test_a_token_payment_after_a_containers_first_makes_3_dynamodb_requests_and_no_kms_call(
    sandbox, monkeypatch, captured_logs
):
    for name, value in (EMULATOR_CREDENTIALS | {"AWS_DEFAULT_REGION": "us-east-1"}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    try:
        with mock.patch.dict(os.environ):  # the functions' environment the payments set goes with them
            first, *later = token_payment_calls(sandbox.url, PAYMENTS)
    finally:
        bootstrap.adapters.cache_clear()  # adapters bound to the moto that is gone
    assert requests_to(first, "dynamodb") > 3  # the first also looks its caller's merchant up
    per_payment = [(requests_to(calls, "dynamodb"), requests_to(calls, "kms")) for calls in later]
    assert per_payment == [(3, 0)] * (PAYMENTS - 1), later
