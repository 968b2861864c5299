"""`make local` stops cleanly: every port it bound is free again, and a second start on the same ports serves.

Its own module, so that it runs beside the end-to-end tests of tests/test_local.py rather than after them."""

import pytest

from tests.support.local_stack import LocalStack, post

pytestmark = pytest.mark.local


@pytest.fixture
def local():
    stack = LocalStack()
    stack.start()
    yield stack
    if stack.process.poll() is None:
        stack.stop()


def test_stop_frees_every_port_and_a_second_start_works(local):
    assert local.stop() == 0
    assert local.bound_ports() == []
    again = LocalStack(local.ports)  # the same ports: nothing may be left bound
    again.start()
    try:
        token = post(again, "/tokens", {"card": {"number": "5555555555554444", "exp_month": 12, "exp_year": 2030}})
        assert token.status_code == 201
        items = again.aws("dynamodb").scan(TableName="payments-dev-ledger")["Items"]
        kinds = sorted(item["pk"]["S"].split("#", 1)[0] for item in items)
        assert kinds == ["CHECKPOINT", "CHECKPOINT", "TOKEN"]  # a fresh start: each merchant's first checkpoint
    finally:
        assert again.stop() == 0
    assert again.bound_ports() == []
