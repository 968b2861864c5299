"""Sandbox server. Binds 127.0.0.1 only; never logs a card number.

Sandbox-only control routes (no auth, loopback only):
``GET/POST /_sandbox/faults`` reads or sets the faults (``Faults``);
``GET /_sandbox/charges`` and ``GET /_sandbox/refunds`` list everything;
``POST /_sandbox/clock`` ``{"advance": seconds}`` moves the sandbox's clock forward (authorisations expire by it);
``POST /_sandbox/settle`` ``{"drop": [...], "adjust": {...}, "unknown": n}`` makes a settlement now of everything not
yet settled (``sparkle_sandbox.settlements``): 200 with it (``{"data": [...]}`` when several currencies made one
each), 204 when nothing was unsettled;
``POST /_sandbox/reset`` clears all, restores the faults given at start and the clock.
"""

import hashlib
import json
import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from sparkle_sandbox.settlements import MAX_LINES_PER_PAGE, Settleable, Settlements
from sparkle_sandbox.settlements import Faults as SettleFaults

HOST = "127.0.0.1"
DEFAULT_PORT = 4010
DEFAULT_SECRET_KEY = "sk_test_sandbox"

SUCCEEDING_CARDS = ("4242424242424242", "5555555555554444", "378282246310005")
DECLINES = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
}
PROCESSING_ERROR_CARD = "4000000000000119"
SLOW_CARD = "4000000000003220"
SLOW_REFUND_AMOUNT = 3220  # a refund of exactly this is processed, but answered only after the slow delay
GARBAGE = b"<html><body>Upstream answered nothing useful</body></html>"
AUTHORIZATION_SECONDS = 7 * 24 * 3600  # an authorisation not captured by then expires
CHARGE_ACTION = re.compile(r"/v1/charges/([^/]+)/(capture|void)")
SETTLEMENT_LINES = re.compile(r"/v1/settlements/([^/]+)/lines")

Answer = tuple[int, dict, float]  # (status, body, seconds to wait before answering)


@dataclass
class Faults:
    """Each rate is the share of API requests (``/v1/...``) that meet the fault."""

    latency_ms: int = 0  # waited before anything is processed
    error_rate: float = 0.0  # answered 503, nothing processed
    redirect_rate: float = 0.0  # answered 302 to ``redirect_to``, nothing processed
    redirect_to: str = "http://127.0.0.1:9/v1/charges"
    drop_rate: float = 0.0  # POSTs: processed (or replayed), then the connection closes without an answer
    garbage_rate: float = 0.0  # POSTs: processed (or replayed), then answered 200 with a body that is not JSON
    slow_rate: float = 0.0  # POSTs: processed at once, answered only after the slow delay (as the slow test card)


class _Idempotent:
    """Per-key record: body digest and, once finished, the answer to replay."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.answer: tuple[int, dict] | None = None


class Sandbox:
    def __init__(self, secret_key: str, faults: Faults, slow_delay: float) -> None:
        self.secret_key = secret_key
        self.initial_faults = replace(faults)
        self.faults = faults
        self.slow_delay = slow_delay
        self.lock = threading.Lock()
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.idempotency: dict[tuple[str, str], _Idempotent] = {}
        self.resets = 0  # a request delayed across a reset is dropped: a reset leaves nothing from before it
        self.clock_offset = 0.0  # seconds the sandbox's clock is ahead of this machine's
        self.settlements = Settlements()

    def reset(self) -> None:
        with self.lock:
            self.resets += 1
            self.charges.clear()
            self.refunds.clear()
            self.idempotency.clear()
            self.faults = replace(self.initial_faults)
            self.clock_offset = 0.0
            self.settlements.clear()

    def now(self) -> float:
        """The sandbox's clock: unix seconds, moved forward by ``advance``."""
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> float:
        with self.lock:
            self.clock_offset += seconds
            return self.now()

    def meets(self, rate: float) -> bool:
        return random.random() < rate

    # -- idempotency ----------------------------------------------------------

    def begin(self, route: str, key: str, body: dict) -> tuple[_Idempotent | None, tuple[int, dict] | None]:
        """(the new record, None) when the request should run; else (None, the answer to give instead)."""
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self.lock:
            record = self.idempotency.get((route, key))
            if record is None:
                record = self.idempotency[(route, key)] = _Idempotent(digest)
                return record, None
            if record.digest != digest:
                return None, (422, _error("idempotency_mismatch", "This key was used with a different body."))
            if record.answer is None:
                return None, (409, _error("idempotency_in_flight", "A request with this key is in flight."))
            return None, record.answer

    def finish(self, route: str, key: str, record: _Idempotent, status: int, body: dict) -> None:
        with self.lock:
            if self.idempotency.get((route, key)) is not record:  # reset while this request ran
                return
            if status >= 500:  # not stored: a retry runs again
                del self.idempotency[(route, key)]
            else:
                record.answer = (status, body)

    # -- operations -----------------------------------------------------------

    def charge(self, body: dict) -> Answer:
        """A charge, or with ``"capture": false`` an authorisation."""
        problem = _invalid_charge(body)
        if problem:
            return 400, _error("invalid_request", problem), 0
        card = body["card"]
        number = str(card["number"]).replace(" ", "").replace("-", "")
        if number == PROCESSING_ERROR_CARD:
            return 500, _error("processing_error", "The processor failed; nothing was charged."), 0
        decline, amount, capture = DECLINES.get(number), body["amount"], body.get("capture", True)
        created = int(self.now())
        status = "declined" if decline else "succeeded" if capture else "authorized"
        charge = {
            "id": f"ch_{secrets.token_hex(12)}",
            "status": status,
            "decline_code": decline,
            "amount": amount,
            "amount_captured": amount if status == "succeeded" else 0,
            "amount_capturable": amount if status == "authorized" else 0,
            "amount_refunded": 0,
            "currency": body["currency"].upper(),
            "reference": body["reference"],
            "created": created,
            "expires": created + AUTHORIZATION_SECONDS if status == "authorized" else None,
            "last4": number[-4:],
        }
        with self.lock:
            self.charges[charge["id"]] = charge
            answer = _public(charge)
        return 200, answer, self.slow_delay if number == SLOW_CARD else 0

    def capture(self, charge_id: str, body: dict) -> Answer:
        """Capture ``amount`` (all that is capturable when absent) of an authorised charge, once."""
        amount = body.get("amount")
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0):
            return 400, _error("invalid_request", "amount must be a positive integer"), 0
        with self.lock:
            charge, refused = self._still_authorized(charge_id, "charge_not_capturable")
            if refused:
                return 400, refused, 0
            capturable = charge["amount_capturable"]
            if amount is not None and amount > capturable:
                return 400, _error("amount_too_large", f"At most {capturable} can be captured."), 0
            captured = capturable if amount is None else amount
            charge.update(status="succeeded", amount_captured=captured, amount_capturable=0)
            return 200, _public(charge), 0

    def void(self, charge_id: str, body: dict) -> Answer:
        """Release an authorised charge."""
        with self.lock:
            charge, refused = self._still_authorized(charge_id, "charge_not_voidable")
            if refused:
                return 400, refused, 0
            charge.update(status="voided", amount_capturable=0)
            return 200, _public(charge), 0

    def _still_authorized(self, charge_id: str, code: str) -> tuple[dict, dict | None]:
        """(the charge, None) when it is authorised now; else (the charge or {}, the error to answer). Locked."""
        charge = self.charges.get(charge_id)
        if charge is None:
            return {}, _error("invalid_request", "No such charge.")
        self._expire_if_due(charge)
        if charge["status"] == "expired":
            return charge, _error("charge_expired", "The authorisation has expired.")
        if charge["status"] != "authorized":
            return charge, _error(code, f"The charge is {charge['status']}, not authorized.")
        return charge, None

    def _expire_if_due(self, charge: dict) -> dict:
        """``charge``, expired if it is an authorisation whose time has come (its status is evaluated when it is
        read or changed). Locked."""
        if charge["status"] == "authorized" and charge["expires"] <= self.now():
            charge.update(status="expired", amount_capturable=0)
        return charge

    def refund(self, body: dict) -> Answer:
        """A refund of a succeeded charge, up to what was captured and not yet refunded."""
        amount, reference = body.get("amount"), body.get("reference")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return 400, _error("invalid_request", "amount must be a positive integer"), 0
        if not isinstance(reference, str) or not reference:
            return 400, _error("invalid_request", "reference is required"), 0
        with self.lock:
            charge = self.charges.get(body.get("charge"))
            if charge is None or charge["status"] != "succeeded":
                return 400, _error("invalid_request", "No succeeded charge with that id."), 0
            left = charge["amount_captured"] - charge["amount_refunded"]
            if amount > left:
                return 400, _error("amount_too_large", f"At most {left} can be refunded."), 0
            charge["amount_refunded"] += amount
            refund = {
                "id": f"rf_{secrets.token_hex(12)}",
                "charge": charge["id"],
                "amount": amount,
                "status": "succeeded",
                "reference": reference,
                "created": int(self.now()),
            }
            self.refunds[refund["id"]] = refund
        return 200, dict(refund), self.slow_delay if amount == SLOW_REFUND_AMOUNT else 0

    def find(self, kind: str, path: str, query: str) -> tuple[int, dict]:
        """``GET /v1/{kind}/{id}`` or ``GET /v1/{kind}?reference=…``."""
        store = self.charges if kind == "charges" else self.refunds
        with self.lock:
            if path == f"/v1/{kind}":
                reference = parse_qs(query).get("reference", [""])[0]
                found = (item for item in store.values() if item["reference"] == reference)
                return 200, {"data": [self._as_now(kind, item) for item in found]}
            item = store.get(path.rsplit("/", 1)[1])
            if item is None:
                return 404, _error("not_found", f"No such {kind[:-1]}.")
            return 200, self._as_now(kind, item)

    def everything(self, kind: str) -> dict:
        store = self.charges if kind == "charges" else self.refunds
        with self.lock:
            return {"data": [self._as_now(kind, item) for item in store.values()]}

    def _as_now(self, kind: str, item: dict) -> dict:
        """A charge or refund as it is now, as answered. Locked."""
        return _public(self._expire_if_due(item) if kind == "charges" else item)

    # -- settlements ----------------------------------------------------------

    def settle(self, body: dict) -> tuple[int, dict | None]:
        """``POST /_sandbox/settle``: 200 with the settlement made (several: ``{"data": [...]}``), 204 for none."""
        faults = _settle_faults(body)
        if isinstance(faults, str):
            return 400, _error("invalid_request", faults)
        with self.lock:
            made = self.settlements.settle(self._settleable(), faults, int(self.now()))
        if not made:
            return 204, None
        return 200, made[0] if len(made) == 1 else {"data": made}

    def _settleable(self) -> list[Settleable]:
        """Every succeeded capture and refund, oldest first (a refund in its charge's currency). Locked."""
        charges = [self._expire_if_due(charge) for charge in self.charges.values()]
        items = [
            (charge["created"], 0, Settleable("charge", charge["id"], charge["id"], None, charge["reference"],
                                              charge["amount_captured"], charge["currency"]))
            for charge in charges if charge["status"] == "succeeded" and charge["amount_captured"] > 0
        ]  # fmt: skip
        for refund in self.refunds.values():
            currency = self.charges[refund["charge"]]["currency"]
            item = Settleable("refund", refund["id"], refund["charge"], refund["id"], refund["reference"],
                              -refund["amount"], currency)  # fmt: skip
            items.append((refund["created"], 1, item))
        return [item for _, _, item in sorted(items, key=lambda entry: (entry[0], entry[1]))]

    def listed_settlements(self, query: str) -> tuple[int, dict]:
        """``GET /v1/settlements?created_after=``: oldest first."""
        created_after = parse_qs(query).get("created_after", ["0"])[0]
        if not created_after.lstrip("-").isdigit():
            return 400, _error("invalid_request", "created_after must be unix seconds")
        with self.lock:
            return 200, {"data": self.settlements.listed(int(created_after))}

    def settlement_lines(self, settlement_id: str, query: str) -> tuple[int, dict]:
        """``GET /v1/settlements/{id}/lines?starting_after=&limit=``."""
        params = parse_qs(query)
        limit_text = params.get("limit", [str(MAX_LINES_PER_PAGE)])[0]
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LINES_PER_PAGE:
            return 400, _error("invalid_request", f"limit must be 1 to {MAX_LINES_PER_PAGE}")
        starting_after = params.get("starting_after", [None])[0]
        with self.lock:
            try:
                page = self.settlements.page(settlement_id, starting_after, int(limit_text))
            except KeyError:
                return 400, _error("invalid_request", "starting_after is no line of this settlement")
        if page is None:
            return 404, _error("not_found", "No such settlement.")
        lines, has_more = page
        return 200, {"data": lines, "has_more": has_more}


def _settle_faults(body: dict) -> SettleFaults | str:
    """The faults of a settle request, or what is wrong with them."""
    drop, adjust, unknown = body.get("drop", []), body.get("adjust", {}), body.get("unknown", 0)
    if not isinstance(drop, list) or not all(isinstance(reference, str) for reference in drop):
        return "drop must be a list of references"
    if not isinstance(adjust, dict) or not all(_is_int(units) for units in adjust.values()):
        return "adjust must map references to minor units"
    if not _is_int(unknown) or unknown < 0:
        return "unknown must be a number of lines, not negative"
    return SettleFaults(frozenset(drop), dict(adjust), unknown)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _public(item: dict) -> dict:
    return {k: v for k, v in item.items() if k != "last4"}


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
    if not isinstance(body.get("capture", True), bool):
        return "capture must be true or false"
    if not isinstance(card, dict) or not all(k in card for k in ("number", "exp_month", "exp_year")):
        return "card needs number, exp_month and exp_year"
    return None


class Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox  # set on the class by make_server()
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else a kept-alive client waits ~40 ms for each answer's second segment

    def log_message(self, format: str, *args) -> None:  # paths only ever; still, keep stdout quiet
        pass

    def _send(self, status: int, body: dict | bytes | None, headers: dict | None = None) -> None:
        payload = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        content_type = "text/html" if isinstance(body, bytes) else "application/json"
        for name, value in {"Content-Type": content_type, **(headers or {})}.items():
            self.send_header(name, value)
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

    def _refused_before_processing(self) -> bool:
        """Auth, latency, errors and redirects; True when the request was answered here."""
        if not self._authorized():
            return True
        faults, resets = self.sandbox.faults, self.sandbox.resets
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
            if self.sandbox.resets != resets:
                self._drop()
                return True
        if self.sandbox.meets(faults.error_rate):
            self._send(503, _error("unavailable", "Sandbox fault: service unavailable."))
            return True
        if self.sandbox.meets(faults.redirect_rate):
            self._send(302, _error("moved", "Sandbox fault: moved."), {"Location": faults.redirect_to})
            return True
        return False

    def _control(self, method: str, path: str, body: dict | None) -> bool:
        """The sandbox-only routes; True when the request was one."""
        sandbox = self.sandbox
        if path == "/_sandbox/faults" and method == "GET":
            self._send(200, asdict(sandbox.faults))
        elif path == "/_sandbox/faults" and body is not None:
            known = {name: value for name, value in body.items() if name in Faults.__dataclass_fields__}
            sandbox.faults = replace(sandbox.faults, **known)
            self._send(200, asdict(sandbox.faults))
        elif path in ("/_sandbox/charges", "/_sandbox/refunds") and method == "GET":
            self._send(200, sandbox.everything(path.rsplit("/", 1)[1]))
        elif path == "/_sandbox/clock" and body is not None:
            advance = body.get("advance")
            if not isinstance(advance, (int, float)) or isinstance(advance, bool) or advance < 0:
                self._send(400, _error("invalid_request", "advance must be a number of seconds, not negative"))
            else:
                self._send(200, {"now": sandbox.advance(advance)})
        elif path == "/_sandbox/settle" and body is not None:
            self._send(*sandbox.settle(body))
        elif path == "/_sandbox/reset" and method == "POST":
            sandbox.reset()
            self._send(200, {})
        else:
            return False
        return True

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if self._control("GET", url.path, None) or self._refused_before_processing():
            return
        for kind in ("charges", "refunds"):
            if url.path == f"/v1/{kind}" or url.path.startswith(f"/v1/{kind}/"):
                return self._send(*self.sandbox.find(kind, url.path, url.query))
        if url.path == "/v1/settlements":
            return self._send(*self.sandbox.listed_settlements(url.query))
        lines = SETTLEMENT_LINES.fullmatch(url.path)
        if lines:
            return self._send(*self.sandbox.settlement_lines(lines.group(1), url.query))
        self._send(404, _error("not_found", "No such route."))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if self._control("POST", url.path, body) or self._refused_before_processing():
            return
        if body is None:
            return self._send(400, _error("invalid_json", "The body is not a JSON object."))
        operation = self._operation(url.path)
        if operation is None:
            return self._send(404, _error("not_found", "No such route."))
        key = self.headers.get("Idempotency-Key")
        if not key:
            return self._send(400, _error("idempotency_key_missing", "Idempotency-Key is required."))
        faults = self.sandbox.faults
        record, replay = self.sandbox.begin(url.path, key, body)
        if replay:
            status, answer = replay
        else:
            status, answer, delay = operation(body)
            if status == 200 and self.sandbox.meets(faults.slow_rate):
                delay = self.sandbox.slow_delay
            time.sleep(delay)  # the object exists meanwhile; a retry with this key gets 409
            self.sandbox.finish(url.path, key, record, status, answer)
        if self.sandbox.meets(faults.drop_rate):  # processed (or replayed), answer lost
            return self._drop()
        if self.sandbox.meets(faults.garbage_rate):
            return self._send(200, GARBAGE)
        self._send(status, answer)

    def _operation(self, path: str) -> Callable[[dict], Answer] | None:
        """What a POST to ``path`` does (its idempotency is scoped to the path), or None for no such route."""
        sandbox = self.sandbox
        if path in ("/v1/charges", "/v1/refunds"):
            return sandbox.charge if path == "/v1/charges" else sandbox.refund
        action = CHARGE_ACTION.fullmatch(path)
        if action is None:
            return None
        charge_id, verb = action.groups()
        change = sandbox.capture if verb == "capture" else sandbox.void
        return lambda body: change(charge_id, body)


def make_server(port: int, secret_key: str, faults: Faults, slow_delay: float) -> ThreadingHTTPServer:
    handler = type("SandboxHandler", (Handler,), {"sandbox": Sandbox(secret_key, faults, slow_delay)})
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    return server


def serve(port: int, secret_key: str, faults: Faults, slow_delay: float) -> None:
    server = make_server(port, secret_key, faults, slow_delay)
    print(f"Sparkle sandbox listening on http://{HOST}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
