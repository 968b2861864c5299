"""Sparkle gateway client (implements ``lambdas.gateway.Gateway``): timeouts, bounded retries that reuse the idempotency
key, and lookups by reference to settle an answer that was lost."""

import time
from dataclasses import dataclass
from typing import Callable

import requests
from urllib3.exceptions import NewConnectionError

from lambdas.domain.cards import Card
from lambdas.gateway import Charge, GatewayOutcomeUnknown, GatewayRejected, GatewayUnavailable


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: float = 0.2  # doubled after each attempt

    def delays(self):
        for attempt in range(self.attempts - 1):
            yield self.backoff_seconds * 2**attempt


class SparkleClient:
    def __init__(
        self,
        base_url: str,
        secret_key: Callable[[], str],
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret_key = secret_key
        self.timeout = (connect_timeout, read_timeout)
        self.retry = retry
        self.session = session or requests.Session()

    def charge(self, reference: str, amount: int, currency: str, card: Card, idempotency_key: str) -> Charge:
        body = {
            "amount": amount,
            "currency": currency,
            "reference": reference,
            "card": {"number": card.number.digits, "exp_month": card.exp_month, "exp_year": card.exp_year,
                     **({"cvc": card.cvc} if card.cvc else {})},
        }  # fmt: skip
        return _charge(self._post("/v1/charges", body, idempotency_key))

    def find_charge(self, reference: str) -> Charge | None:
        """The charge made for ``reference``, if the gateway has one."""
        found = self._send("GET", "/v1/charges", params={"reference": reference})["data"]
        return _charge(found[0]) if found else None

    def refund(self, charge_id: str, amount: int, idempotency_key: str) -> str:
        return self._post("/v1/refunds", {"charge": charge_id, "amount": amount}, idempotency_key)["id"]

    def _post(self, path: str, body: dict, idempotency_key: str) -> dict:
        return self._send("POST", path, json=body, headers={"Idempotency-Key": idempotency_key})

    def _send(self, method: str, path: str, headers: dict | None = None, **kwargs) -> dict:
        """Send, retrying transient failures with the same key; raise what is known."""
        unknown = False  # did an attempt possibly reach the gateway without an answer?
        delays = self.retry.delays()
        while True:
            try:
                response = self.session.request(
                    method,
                    f"{self.base_url}{path}",
                    headers={"Authorization": f"Bearer {self.secret_key()}", **(headers or {})},
                    timeout=self.timeout,
                    **kwargs,
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                unknown = unknown or not _never_connected(error)
            else:
                if response.status_code < 300:
                    return response.json()
                if response.status_code == 409:  # the first attempt with this key is still running
                    unknown = True
                elif response.status_code < 500:
                    error = _error_of(response)
                    raise GatewayRejected(response.status_code, error.get("code", ""), error.get("message", ""))
            delay = next(delays, None)
            if delay is None:
                raise GatewayOutcomeUnknown() if unknown else GatewayUnavailable()
            time.sleep(delay)


def _never_connected(error: Exception) -> bool:
    """True when the request cannot have reached the gateway (refused, or no connection in time)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


def _error_of(response: requests.Response) -> dict:
    try:
        return response.json().get("error") or {}
    except ValueError:
        return {}


def _charge(body: dict) -> Charge:
    return Charge(body["id"], body["status"], body.get("decline_code"), body["amount"], body["currency"],
                  body["reference"])  # fmt: skip
