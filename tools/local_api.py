"""The payment API over HTTP on loopback, served by the real handlers in process.

Each request becomes the API Gateway REST proxy event the deployed API would
send (headers, path parameters, body, request context with a request id and
the caller). What API Gateway and its WAF enforce in front of the functions is
enforced here the same way: the route table (unknown routes are refused),
the body-size limit, throttling (a token bucket with the stage's rate and
burst), SigV4 (``tools.sigv4``: only the credentials `make local` issued, each
reported to the handlers as its IAM user, as API Gateway reports the signer),
the merchants' API keys (a request carries its signer's merchant's key, whose
id the event reports as API Gateway does) and their usage plans (a token
bucket per merchant, with its own rate and burst; a 429 says when to retry)
and the contract's error shape for each. The throttles come last: only a
request that passed the route table, its signature, its key and its
merchant's own plan spends a token of the stage's bucket, so no merchant (nor
a stranger) spends another's. Each invocation gets a Lambda context whose
remaining time counts down from the function's timeout, so a local request is
bounded as a deployed one is."""

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from client.signing import API_KEY_HEADER
from lambdas.presenters import error_body
from lambdas.routes import API_KEY_MISMATCH, API_KEY_MISMATCH_MESSAGE, Function
from tools.api_events import LambdaContext, api_event, function_handler, handler_for, route_for
from tools.sigv4 import IssuedCredential, SignatureRejected, verify

HOST = "127.0.0.1"
OPENAPI = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


class TokenBucket:
    """API Gateway's throttle: ``rate`` requests per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.updated = float(burst), clock()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True

    @property
    def retry_after(self) -> int:
        """Whole seconds until an emptied bucket holds a token again: a 429's ``Retry-After``."""
        return max(1, math.ceil(1 / self.rate))


API_GATEWAY_PAYLOAD_LIMIT_BYTES = 10 * 1024 * 1024  # a REST API's largest request; larger ones never reach a function


class LocalApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        port: int,
        throttle: TokenBucket | None,
        function_timeout_seconds: float,
        credentials: Mapping[str, IssuedCredential],
        region: str,
        on_invoke: Callable[[Function, list[str]], None] | None = None,
        payload_limit_bytes: int = API_GATEWAY_PAYLOAD_LIMIT_BYTES,
        api_keys: Mapping[str, str] | None = None,
        merchant_throttles: Mapping[str, TokenBucket] | None = None,
        api_key_ids: Mapping[str, str] | None = None,
    ) -> None:
        self.credentials = credentials  # by access key id: the only keys whose signatures are accepted
        self.api_keys = api_keys  # the merchant of each API key: a request must carry one (None: no keys required)
        self.api_key_ids = api_key_ids or {}  # each API key's id, reported in the event as API Gateway reports it
        self.merchant_throttles = merchant_throttles or {}  # by merchant: its usage plan's bucket (none: unlimited)
        self.region = region
        self.payload_limit_bytes = payload_limit_bytes
        self.throttle = throttle
        self.function_timeout_seconds = function_timeout_seconds  # each invocation's context counts down from it
        self.on_invoke = on_invoke  # receives each invocation's function and log lines
        super().__init__((HOST, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: LocalApi
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else a kept-alive client waits ~40 ms for each answer's second segment

    def log_message(self, format: str, *args) -> None:
        pass  # the handlers log, as in Lambda

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(
        self, status: int, error_type: str, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = error_body(error_type, code, message, str(uuid.uuid4()))
        self._send(status, json.dumps(body).encode(), headers or {})

    def _throttled(self, bucket: TokenBucket) -> None:
        self._refuse(
            429, "rate_limit_error", "rate_limited", "Too Many Requests", {"Retry-After": str(bucket.retry_after)}
        )

    def _body_length(self) -> int | None:
        """The body's length, or None once refused as API Gateway would: a length it cannot read (400), or over
        its 10 MB payload limit (413; the function enforces 32 KiB)."""
        header = self.headers.get("Content-Length") or "0"
        if not header.isdigit():
            self.close_connection = True
            self._refuse(400, "invalid_request_error", "invalid_content_length", "Invalid Content-Length")
            return None
        if int(header) > self.server.payload_limit_bytes:
            self.close_connection = True
            self._refuse(413, "invalid_request_error", "body_too_large", "Request Too Large")
            return None
        return int(header)

    def _metered(self, api_key: str, signer: IssuedCredential) -> bool:
        """False once refused: with a key that is no merchant's (403, as API Gateway refuses it), with another
        merchant's key than the signer's (403, as the edge refuses it deployed), or over the merchant's own usage
        plan (429), and only then over the stage's (429). A request refused here spends no one else's tokens, so one
        merchant (or a stranger) never causes another's 429 while the merchants together stay within the stage's
        rate."""
        if self.server.api_keys is not None:
            merchant = self.server.api_keys.get(api_key)
            if merchant is None:
                self._refuse(403, "permission_error", "invalid_api_key", "Forbidden")
                return False
            if merchant != signer.merchant:
                self._refuse(403, "permission_error", API_KEY_MISMATCH, API_KEY_MISMATCH_MESSAGE)
                return False
            bucket = self.server.merchant_throttles.get(merchant)
            if bucket and not bucket.take():
                self._throttled(bucket)
                return False
        if self.server.throttle and not self.server.throttle.take():
            self._throttled(self.server.throttle)
            return False
        return True

    def _api_key(self, headers: dict[str, str], signer: IssuedCredential) -> str:
        """The key whose usage plan meters the request: the one it carries (the SDK sends its merchant's, as a
        deployed client must), else its signer's merchant's, since the contract's local clients need only their
        credentials profile."""
        carried = headers.get(API_KEY_HEADER)
        if carried is not None or self.server.api_keys is None:
            return carried or ""
        return next((key for key, merchant in self.server.api_keys.items() if merchant == signer.merchant), "")

    def _serve(self) -> None:
        server = self.server
        path = self.path.split("?", 1)[0]
        if self.command == "GET" and path == "/openapi.json":
            return self._send(200, OPENAPI.read_bytes(), {})
        length = self._body_length()
        if length is None:
            return None
        raw = self.rfile.read(length)
        route, _ = route_for(self.command, path)
        if route is None:  # API Gateway answers an unknown route with 403 before any function runs
            return self._refuse(403, "permission_error", "missing_authentication_token", "Missing Authentication Token")
        headers: dict[
            str, str
        ] = {}  # a repeated header's values joined, as SigV4 signs them and API Gateway passes them
        for name, value in self.headers.items():
            headers[name.lower()] = f"{headers[name.lower()]},{value}" if name.lower() in headers else value
        try:
            url = f"http://{headers.get('host', HOST)}{self.path}"
            signer = verify(self.command, url, headers, raw, server.credentials, server.region, datetime.now(UTC))
        except SignatureRejected as rejected:
            return self._refuse(403, "permission_error", rejected.code, rejected.message)
        api_key = self._api_key(headers, signer)
        if not self._metered(api_key, signer):  # the throttles, last: only requests that may be served spend tokens
            return None
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            return self._refuse(400, "invalid_request_error", "invalid_body", "The body is not UTF-8 text.")
        event = api_event(
            self.command,
            self.path,  # with its query string
            headers=headers,  # exactly what was verified
            raw_body=text or None,
            caller=signer.principal_arn,
            content_type=None,
            api_key_id=self.server.api_key_ids.get(api_key),
        )
        lines: list[str] = []
        with _captured_logs(lines):
            response = handler_for(route)(event, LambdaContext(self.server.function_timeout_seconds))
        if self.server.on_invoke:
            self.server.on_invoke(route.function, lines)
        self._send(response["statusCode"], response["body"].encode(), response.get("headers") or {})

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # every method meets the route table, as at API Gateway (TRACE included)
            return self._serve
        raise AttributeError(name)


class Schedule:
    """A scheduled function, run as its EventBridge rule runs it: an event of source ``aws.events``, a Lambda context
    counting down from the function's timeout, its log lines to ``on_invoke``; every ``interval_seconds`` in a
    thread of its own (``start``) until ``stop``."""

    def __init__(
        self,
        function: Function,
        interval_seconds: float,
        function_timeout_seconds: float,
        on_invoke: Callable[[Function, list[str]], None] | None = None,
    ) -> None:
        self.function = function
        self.interval_seconds = interval_seconds
        self.function_timeout_seconds = function_timeout_seconds
        self.on_invoke = on_invoke
        self.stopped = threading.Event()

    def run_once(self) -> object:
        lines: list[str] = []
        with _captured_logs(lines):
            try:
                return function_handler(self.function)(
                    {"source": "aws.events"}, LambdaContext(self.function_timeout_seconds)
                )
            except Exception:  # as Lambda: the run failed and was logged; the next one comes on schedule
                logging.getLogger(__name__).exception("scheduled %s failed", self.function.value)
                return None
            finally:
                if self.on_invoke:
                    self.on_invoke(self.function, lines)

    def start(self) -> None:
        def every_interval() -> None:
            while not self.stopped.wait(self.interval_seconds):
                self.run_once()

        threading.Thread(target=every_interval, name=f"schedule-{self.function.value}", daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()


_invocation = threading.local()


class _captured_logs:
    """Collects the log lines a handler writes while it runs in this thread."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __enter__(self):
        _invocation.lines = self.lines

    def __exit__(self, *exc) -> None:
        _invocation.lines = None


class InvocationLogHandler(logging.Handler):
    """Hands each formatted record to the invocation running in this thread (as Lambda's log capture does)."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(_invocation, "lines", None)
        if lines is not None:
            lines.append(self.format(record))
