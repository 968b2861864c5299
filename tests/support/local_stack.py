"""A `make local` run for tests, and requests to its API sent as a well-behaved client sends them."""

import time
from collections.abc import Callable

import requests

from tests.service_fixtures import Sandbox
from tests.support.leaks import card_data_in
from tools.local_process import LocalProcess


class LocalStack(LocalProcess):
    def faults(self, **settings) -> None:
        Sandbox(self.sandbox).faults(**settings)

    def charges(self) -> list[dict]:
        return Sandbox(self.sandbox).charges()

    def advance_gateway_clock(self, seconds: int) -> None:
        Sandbox(self.sandbox).advance_clock(seconds)


CHECKPOINT_SECONDS = 1  # the local schedule of the checkpoint function (deployed: every 5 minutes)


def within_rate(send: Callable[[], requests.Response]) -> requests.Response:
    """``send``'s answer, sent again after each 429's ``Retry-After``, as the SDK does: a merchant's own rate (globex:
    5/s in dev) is kept by a well-behaved client, and the tests that exceed it on purpose send raw requests."""
    deadline = time.monotonic() + 30
    response = send()
    while response.status_code == 429 and time.monotonic() < deadline:
        time.sleep(int(response.headers["Retry-After"]))
        response = send()
    return response


def post(local, path: str, body=None, key: str | None = None, **kwargs) -> requests.Response:
    headers = {"Idempotency-Key": key} if key else {}
    kwargs.setdefault("auth", local.auth())
    response = within_rate(
        lambda: requests.post(f"{local.api}{path}", json=body, headers=headers, timeout=60, **kwargs)
    )
    assert card_data_in(response.text) == []
    return response


def get(local, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("auth", local.auth())
    response = within_rate(lambda: requests.get(f"{local.api}{path}", timeout=30, **kwargs))
    assert card_data_in(response.text) == []
    return response


def error_of(response: requests.Response, status: int, error_type: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["type"] == error_type and error["request_id"] and error["message"]
    return error
