"""The SDK's tests' shared transports: a scripted session (answers from a list, every request recorded), a clock
whose sleeps only advance it, a transport under a real ``requests.Session`` that records what would go on the wire,
and the signed webhook delivery the contract describes, made without the SDK."""

import hashlib
import hmac
import json

import requests

from client import PaymentsClient

PAYMENT = {
    "id": "pay_1",
    "status": "succeeded",
    "amount": 1999,
    "currency": "USD",
    "amount_refunded": 0,
    "card": {"brand": "visa", "last4": "4242", "fingerprint": "fp"},
    "gateway": {"name": "sparkle", "charge_id": "ch_1"},
    "metadata": {"order": "A-1"},
    "created_at": "2026-11-27T12:00:00.000Z",
}


class Answer:
    def __init__(self, status: int, body: dict, headers: dict | None = None) -> None:
        self.status_code, self._body, self.headers = status, body, headers or {}

    def json(self) -> dict:
        return self._body


def error(status: int, error_type: str, **fields) -> Answer:
    return Answer(status, {"error": {"type": error_type, "code": "c", "message": "m", "request_id": "r", **fields}})


class Script:
    """A session that answers from a list (an exception in the list is raised) and records every request."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.requests: list[dict] = []

    def request(self, method, url, json=None, headers=None, auth=None, timeout=None, allow_redirects=True):
        assert allow_redirects is False
        self.requests.append({"method": method, "url": url, "json": json, "headers": headers or {}})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now, self.waits = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def client(script: Script, budget: float = 60.0) -> tuple[PaymentsClient, Clock]:
    clock = Clock()
    return PaymentsClient("http://api", auth=lambda r: r, budget_seconds=budget, session=script, sleep=clock.sleep,
                          clock=clock), clock  # fmt: skip


class Recorder(requests.adapters.BaseAdapter):
    """A transport under a real ``requests.Session``: records each request as it would go on the wire (prepared:
    requests has normalised its URL by then) and answers 404."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs) -> requests.Response:
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response.request = 404, request
        response._content = b'{"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "m"}}'
        return response

    def close(self) -> None:
        pass


def recorded() -> tuple[PaymentsClient, Recorder]:
    recorder, session = Recorder(), requests.Session()
    session.mount("http://", recorder)
    return PaymentsClient("http://api", auth=lambda r: r, session=session, sleep=lambda s: None), recorder


SECRET = "whsec_3kQ9pXr7Lm2Vb8Yt"
NOW = 1_796_000_000  # 2026-11-30T00:53:20Z
EVENT = {"id": "evt_1", "type": "payment.succeeded", "created_at": "2026-11-27T12:00:00.000Z",
         "data": {"object": PAYMENT}}  # fmt: skip
BODY = json.dumps(EVENT, separators=(",", ":")).encode()  # as the service sends it: these bytes are signed
ENDPOINT = {"id": "we_1", "url": "https://shop.example/hooks", "events": ["*"], "created_at": "2026-11-27T12:00:00Z"}


def signed(body: bytes, secret: str = SECRET, at: int = NOW) -> str:
    """The ``Payments-Signature`` header the contract describes, made here independently of the SDK."""
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"
