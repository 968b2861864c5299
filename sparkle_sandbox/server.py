"""Sandbox server. Binds 127.0.0.1 only; never logs a card number.

Sandbox-only control routes (no auth, loopback only):
``GET/POST /_sandbox/faults`` reads or sets latency, error and drop rates;
``GET /_sandbox/charges`` lists every charge; ``POST /_sandbox/reset`` clears all.
"""

import hashlib
import json
import random
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
DEFAULT_PORT = 4010
DEFAULT_SECRET_KEY = "sk_test_sandbox"

DECLINES = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
}
PROCESSING_ERROR_CARD = "4000000000000119"
SLOW_CARD = "4000000000003220"


@dataclass
class Faults:
    latency_ms: int = 0
    error_rate: float = 0.0  # answered 503 before anything is processed
    drop_rate: float = 0.0  # processed, then the connection closes without an answer


class _Idempotent:
    """Per-key record: body digest and, once finished, the answer to replay."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.answer: tuple[int, dict] | None = None


class Sandbox:
    def __init__(self, secret_key: str, faults: Faults, slow_card_delay: float) -> None:
        self.secret_key = secret_key
        self.faults = faults
        self.slow_card_delay = slow_card_delay
        self.lock = threading.Lock()
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.idempotency: dict[tuple[str, str], _Idempotent] = {}

    def reset(self) -> None:
        with self.lock:
            self.charges.clear()
            self.refunds.clear()
            self.idempotency.clear()

    # -- idempotency ----------------------------------------------------------

    def begin(self, route: str, key: str, body: dict) -> tuple[int, dict] | None:
        """None when the request should run; else the answer to give instead."""
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self.lock:
            record = self.idempotency.get((route, key))
            if record is None:
                self.idempotency[(route, key)] = _Idempotent(digest)
                return None
            if record.digest != digest:
                return 422, _error("idempotency_mismatch", "This key was used with a different body.")
            if record.answer is None:
                return 409, _error("idempotency_in_flight", "A request with this key is in flight.")
            return record.answer

    def finish(self, route: str, key: str, status: int, body: dict) -> None:
        with self.lock:
            if status >= 500:  # not stored: a retry runs again
                self.idempotency.pop((route, key), None)
            else:
                self.idempotency[(route, key)].answer = (status, body)

    # -- operations -----------------------------------------------------------

    def charge(self, body: dict) -> tuple[int, dict, float]:
        """(status, body, seconds to wait before answering)."""
        problem = _invalid_charge(body)
        if problem:
            return 400, _error("invalid_request", problem), 0
        card = body["card"]
        number = str(card["number"]).replace(" ", "").replace("-", "")
        if number == PROCESSING_ERROR_CARD:
            return 500, _error("processing_error", "The processor failed; nothing was charged."), 0
        decline = DECLINES.get(number)
        charge = {
            "id": f"ch_{secrets.token_hex(12)}",
            "status": "declined" if decline else "succeeded",
            "decline_code": decline,
            "amount": body["amount"],
            "currency": body["currency"].upper(),
            "reference": body["reference"],
            "created": int(time.time()),
            "amount_refunded": 0,
            "last4": number[-4:],
        }
        with self.lock:
            self.charges[charge["id"]] = charge
        delay = self.slow_card_delay if number == SLOW_CARD else 0
        return 200, _public(charge), delay

    def refund(self, body: dict) -> tuple[int, dict]:
        amount = body.get("amount")
        with self.lock:
            charge = self.charges.get(body.get("charge"))
            if charge is None or charge["status"] != "succeeded":
                return 400, _error("invalid_request", "No succeeded charge with that id.")
            left = charge["amount"] - charge["amount_refunded"]
            if amount is None:
                amount = left
            if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= left:
                return 400, _error("amount_too_large", f"At most {left} can be refunded.")
            charge["amount_refunded"] += amount
            refund = {"id": f"rf_{secrets.token_hex(12)}", "charge": charge["id"], "amount": amount, "status": "succeeded"}
            self.refunds[refund["id"]] = refund
        return 200, refund


def _public(charge: dict) -> dict:
    return {k: v for k, v in charge.items() if k not in {"last4", "amount_refunded"}}


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _invalid_charge(body: dict) -> str | None:
    amount, card = body.get("amount"), body.get("card")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return "amount must be a positive integer"
    if not isinstance(body.get("currency"), str) or len(body["currency"]) != 3:
        return "currency must be an ISO 4217 code"
    if not isinstance(body.get("reference"), str) or not body["reference"]:
        return "reference is required"
    if not isinstance(card, dict) or not all(k in card for k in ("number", "exp_month", "exp_year")):
        return "card needs number, exp_month and exp_year"
    return None


class Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox  # set on the class by serve()
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else a kept-alive client waits ~40 ms for each answer's second segment

    def log_message(self, format: str, *args) -> None:  # paths only ever; still, keep stdout quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.close()

    def _body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.sandbox.secret_key}":
            return True
        self._send(401, _error("unauthorized", "Missing or wrong secret key."))
        return False

    def _inject_faults(self) -> bool:
        """Latency and errors; True when the request was answered here."""
        faults = self.sandbox.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if random.random() < faults.error_rate:
            self._send(503, _error("unavailable", "Sandbox fault: service unavailable."))
            return True
        return False

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/_sandbox/faults":
            return self._send(200, asdict(self.sandbox.faults))
        if url.path == "/_sandbox/charges":
            with self.sandbox.lock:
                return self._send(200, {"data": [_public(c) for c in self.sandbox.charges.values()]})
        if not self._authorized() or self._inject_faults():
            return
        if url.path == "/v1/charges":
            reference = parse_qs(url.query).get("reference", [""])[0]
            with self.sandbox.lock:
                found = [_public(c) for c in self.sandbox.charges.values() if c["reference"] == reference]
            return self._send(200, {"data": found})
        if url.path.startswith("/v1/charges/"):
            with self.sandbox.lock:
                charge = self.sandbox.charges.get(url.path.rsplit("/", 1)[1])
            if charge is None:
                return self._send(404, _error("not_found", "No such charge."))
            return self._send(200, _public(charge))
        self._send(404, _error("not_found", "No such route."))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if url.path == "/_sandbox/faults" and body is not None:
            for name, value in body.items():
                if name in Faults.__dataclass_fields__:
                    setattr(self.sandbox.faults, name, value)
            return self._send(200, asdict(self.sandbox.faults))
        if url.path == "/_sandbox/reset":
            self.sandbox.reset()
            return self._send(200, {})
        if not self._authorized() or self._inject_faults():
            return
        if body is None:
            return self._send(400, _error("invalid_json", "The body is not a JSON object."))
        if url.path not in ("/v1/charges", "/v1/refunds"):
            return self._send(404, _error("not_found", "No such route."))
        key = self.headers.get("Idempotency-Key")
        if not key:
            return self._send(400, _error("idempotency_key_missing", "Idempotency-Key is required."))
        replay = self.sandbox.begin(url.path, key, body)
        if replay:
            status, answer = replay
        else:
            delay = 0.0
            if url.path == "/v1/charges":
                status, answer, delay = self.sandbox.charge(body)
            else:
                status, answer = self.sandbox.refund(body)
            time.sleep(delay)
            self.sandbox.finish(url.path, key, status, answer)
        if random.random() < self.sandbox.faults.drop_rate:  # processed (or replayed), answer lost
            return self._drop()
        self._send(status, answer)


def make_server(port: int, secret_key: str, faults: Faults, slow_card_delay: float) -> ThreadingHTTPServer:
    handler = type("SandboxHandler", (Handler,), {"sandbox": Sandbox(secret_key, faults, slow_card_delay)})
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    return server


def serve(port: int, secret_key: str, faults: Faults, slow_card_delay: float) -> None:
    server = make_server(port, secret_key, faults, slow_card_delay)
    print(f"Sparkle sandbox listening on http://{HOST}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
