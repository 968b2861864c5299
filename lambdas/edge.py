"""The HTTP edge shared by every handler: API Gateway REST proxy events in,
contract responses out. Limits, content type, JSON, idempotency keys, the
request's deadline and every error are dealt with here, so handlers stay one
line long.

An error's ``param`` names a field by its path (``source.card.number``); a
member whose name holds a card number is named by its position instead
(``metadata[2]``, ``[0]`` at the top of the body; see
``lambdas.domain.cards.member_param``), and ``error_body`` masks any card
number left in a message or param."""

import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lambdas import deadline
from lambdas.domain.cards import member_param
from lambdas.domain.errors import GatewayFailed, IdempotencyConflict, InvalidRequest, NotFound
from lambdas.domain.idempotency import record_id
from lambdas.domain.merchants import Caller, Merchant
from lambdas.logs import logger
from lambdas.metrics import count_response
from lambdas.presenters import error_body
from lambdas.routes import (
    API_KEY_MISMATCH,
    API_KEY_MISMATCH_MESSAGE,
    BODY_TOO_LARGE,
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_UNSIGNED,
    MAX_BODY_BYTES,
    ROUTES,
    Function,
    signed_header_value,
)
from lambdas.service import Answer, PaymentService, Tenancy

MAX_NESTING = 32  # objects and arrays inside each other; the body itself is level 1
Body = TypeVar("Body")


class HttpError(Exception):
    def __init__(self, status: int, error_type: str, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.code, self.message, self.param = status, error_type, code, message, param


@dataclass(frozen=True)
class ApiRequest:
    method: str
    resource: str
    path_parameters: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    request_id: str
    merchant: str  # the merchant the signer acts for

    def model(self, body: type[Body]) -> Body:
        """The body as ``body`` (a class of ``lambdas.request_bodies``: its pydantic model's validator), or a 400
        naming the first bad field."""
        from pydantic_core import ValidationError  # noqa: PLC0415 (kept out of the read function's cold start)

        from lambdas.request_bodies import validate  # noqa: PLC0415 (likewise)

        try:
            return validate(body, self.body)
        except ValidationError as error:
            first = error.errors(include_input=False, include_url=False)[0]
            param = field_param(first["loc"], self.body) or None
            message = first["msg"] if param is None else f"{param}: {first['msg']}"
            raise HttpError(400, "invalid_request_error", "parameter_invalid", message, param) from None

    def idempotency(self) -> str:
        """The request's idempotency record id (see ``optional_idempotency``); a 400 without the header."""
        record = self.optional_idempotency()
        if record is None:
            raise HttpError(
                400,
                "invalid_request_error",
                "parameter_missing",
                f"The {IDEMPOTENCY_HEADER} header is required.",
                IDEMPOTENCY_HEADER,
            )
        return record

    def optional_idempotency(self) -> str | None:
        """The request's idempotency record id: the key scoped to the merchant and the route (None: no key sent).
        The key is the header's value as its signature covers it (``signed_header_value``: trimmed, runs of spaces
        as one), so a signed request resent with its key respaced is a replay, not a new request."""
        raw = self.headers.get(IDEMPOTENCY_HEADER.lower())
        if raw is None:
            return None
        key = signed_header_value(raw)
        if not (key and len(raw) <= 255 and all(32 <= ord(c) < 127 for c in raw)):  # spaces alone: no key
            raise HttpError(
                400,
                "invalid_request_error",
                "parameter_invalid",
                f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters.",
                IDEMPOTENCY_HEADER,
            )
        return record_id(self.merchant, f"{self.method} {self.resource}", key)


def field_param(loc: tuple[int | str, ...], body: dict[str, Any]) -> str:
    """The ``param`` for pydantic's ``loc`` in ``body``: members by name (or by position, see the module's doc);
    pydantic's own parts (``[key]``: the error is the member's name; a union member's type) as pydantic gives them."""
    param = ""
    node: Any = body  # the value ``part`` is looked up in (None once loc leaves the body)
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            param, node = member_param(param, part, list(node).index(part)), node[part]
            continue
        if isinstance(node, dict) and isinstance(part, str) and (mangled := _position_of_mangled(node, part)) >= 0:
            param, node = f"{param}[{mangled}]", None  # a name pydantic could not render as sent: never its text
            continue
        if isinstance(part, int):
            param += f"[{part}]"
        elif part.startswith("["):
            param += part
        else:
            param = f"{param}.{part}" if param else part
        node = None
    return param


def _position_of_mangled(members: dict[str, Any], rendered: str) -> int:
    """The position of the member whose name pydantic renders as ``rendered`` only after replacing what UTF-8 cannot
    encode (a lone surrogate), else -1."""
    for position, name in enumerate(members):
        if name != rendered and name.encode("utf-8", "surrogatepass").decode("utf-8", "replace") == rendered:
            return position
    return -1


class _DuplicateMember(Exception):
    pass


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _DuplicateMember
    return members


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


# A JSON string (skipped whole, brackets inside it are text) or a bracket. A string left open runs to the end of the
# text (such a body is no JSON anyway): every string is one match, so the scan is linear even on a body of open
# quotes and escapes, where a string that must close would be tried again from each quote (quadratic).
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)|[\[\]{}]', re.DOTALL)


def _nesting_exceeds(text: str, limit: int) -> bool:
    """True when objects and arrays in ``text`` nest deeper than ``limit``: one pass, no recursion."""
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(text):
        char = token.group(0)
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_json_object(data: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400: not UTF-8, not JSON (``NaN`` included), nested deeper than
    ``MAX_NESTING`` (checked before parsing), a member name twice in one object, or not an object."""

    def invalid(code: str, message: str) -> HttpError:
        return HttpError(400, "invalid_request_error", code, message)

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("invalid_json", "The body is not UTF-8 text.") from None
    if _nesting_exceeds(text, MAX_NESTING):
        raise invalid("nesting_too_deep", f"The body nests objects and arrays deeper than {MAX_NESTING} levels.")
    try:
        body = json.loads(text, object_pairs_hook=_object, parse_constant=_refuse_constant)
    except _DuplicateMember:
        raise invalid("duplicate_member", "An object in the body names the same member twice.") from None
    except ValueError:
        raise invalid("invalid_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise invalid("invalid_json", "The body must be a JSON object.")
    return body


def _parse(event: dict[str, Any], merchant: str) -> ApiRequest:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    try:
        data = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode()
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise HttpError(400, "invalid_request_error", "invalid_body", "The body is not valid base64.") from None
    if len(data) > MAX_BODY_BYTES:
        raise HttpError(
            413,
            "invalid_request_error",
            "body_too_large",
            BODY_TOO_LARGE,
        )
    body: dict[str, Any] = {}
    if data.strip():
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise HttpError(
                415, "invalid_request_error", "unsupported_media_type", "The body must be application/json."
            )
        body = parse_json_object(data)
    return ApiRequest(
        method=event.get("httpMethod", ""),
        resource=event.get("resource", ""),
        path_parameters=event.get("pathParameters") or {},
        query=event.get("queryStringParameters") or {},
        headers=headers,
        body=body,
        request_id=(event.get("requestContext") or {}).get("requestId", ""),
        merchant=merchant,
    )


_SIGNED_HEADERS = re.compile(r"SignedHeaders=(?P<names>[^,\s]*)")


def _refuse_an_unsigned_key(event: dict[str, Any]) -> None:
    """A 400 for an ``Idempotency-Key`` that is not among the SigV4 ``SignedHeaders``: its signature would not bind
    the key, so a captured request could be replayed under a fresh one. Checked where the event carries the
    ``Authorization`` header (the local API always passes it); deployed, the WAF checks the header before API
    Gateway (stacks/payment_api.py), whichever headers API Gateway then passes on."""
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    authorization = headers.get("authorization")
    if IDEMPOTENCY_HEADER.lower() not in headers or authorization is None:
        return
    signed = _SIGNED_HEADERS.search(authorization)
    if signed is None or IDEMPOTENCY_HEADER.lower() not in signed["names"].lower().split(";"):
        raise HttpError(
            400, "invalid_request_error", "idempotency_key_unsigned", IDEMPOTENCY_KEY_UNSIGNED, IDEMPOTENCY_HEADER
        )


def _refuse_another_merchants_key(event: dict[str, Any], merchant: Merchant) -> None:
    """A 403 unless the request carried the merchant's own API key (its id, as API Gateway reports the key it
    checked): a key puts a request in its merchant's usage plan, so a signer for one merchant must not spend
    another's rate. Checked only for a merchant whose item names its key (every one the stack writes)."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    if merchant.api_key_id is not None and identity.get("apiKeyId") != merchant.api_key_id:
        raise HttpError(403, "permission_error", API_KEY_MISMATCH, API_KEY_MISMATCH_MESSAGE)


def _caller(event: dict[str, Any]) -> Caller:
    """The signer, as API Gateway's IAM authorization reports it (the local API reports it the same way)."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    return Caller(principal=identity.get("userArn") or "", account=identity.get("accountId") or "")


def _respond(status: int, body: dict[str, Any], replayed: bool = False) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return {"statusCode": status, "headers": headers, "body": json.dumps(body, separators=(",", ":"))}


def _error(
    status: int, error_type: str, code: str, message: str, request_id: str, **optional: str | None
) -> dict[str, Any]:
    return _respond(status, error_body(error_type, code, message, request_id, **optional))


RouteHandler = Callable[[ApiRequest, PaymentService], Answer]


class ApiHandler:
    """The Lambda handler serving ``function``'s routes (``routes`` is keyed by ``"METHOD /resource"``).

    A callable object rather than a closure, so that each request runs the code as it is now (mutation tests)."""

    def __init__(self, function: Function, routes: dict[str, RouteHandler], tenancy: Callable[[], Tenancy]) -> None:
        served = {f"{r.method} {r.path}" for r in ROUTES if r.function is function}
        if served != set(routes):
            raise ValueError(f"{function.value} must serve exactly {sorted(served)}")
        self._routes = routes
        self._tenancy = tenancy

    def __call__(self, event: dict[str, Any], context: object) -> dict[str, Any]:
        started = time.perf_counter()
        deadline.start_from(context)
        request_id = (event.get("requestContext") or {}).get("requestId", "")
        route = f"{event.get('httpMethod')} {event.get('resource')}"
        response = _handle(event, self._routes, self._tenancy, request_id, route)
        if route in self._routes:  # a template API Gateway matched: no request text becomes a metric dimension
            count_response(route, response["statusCode"])
        logger.info(
            "request",
            extra={
                "route": route,
                "status": response["statusCode"],
                "request_id": request_id,
                "replayed": "Idempotent-Replayed" in response["headers"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return response


def _handle(  # noqa: PLR0911 (one answer per error kind)
    event: dict[str, Any],
    routes: dict[str, RouteHandler],
    tenancy: Callable[[], Tenancy],
    request_id: str,
    route: str,
) -> dict[str, Any]:
    try:
        route_handler = routes.get(route)
        if route_handler is None:
            raise NotFound("No such route.")
        _refuse_an_unsigned_key(event)
        served = tenancy().service_for(_caller(event))  # before anything is read of the request or stored
        if served is None:
            raise HttpError(403, "permission_error", "no_merchant", "The caller acts for no merchant.")
        merchant, service = served
        _refuse_another_merchants_key(event, merchant)
        request = _parse(event, merchant.id)
        answer = route_handler(request, service)
        return _respond(answer.status, answer.body, answer.replayed)
    except HttpError as e:
        return _error(e.status, e.error_type, e.code, e.message, request_id, param=e.param)
    except InvalidRequest as e:
        return _error(400, "invalid_request_error", e.code, e.message, request_id, param=e.param)
    except NotFound as e:
        return _error(404, "invalid_request_error", e.code, e.message, request_id)
    except IdempotencyConflict as e:
        return _error(e.status, "idempotency_error", e.code, e.message, request_id)
    except GatewayFailed as e:
        status = 504 if e.timed_out else 502
        code = "gateway_timeout" if e.timed_out else "gateway_failed"
        return _error(
            status, "gateway_error", code, e.message, request_id, payment_id=e.payment_id, refund_id=e.refund_id
        )
    except Exception:
        logger.exception("unexpected error", extra={"route": route, "request_id": request_id})
        return _error(500, "api_error", "internal_error", "An unexpected error occurred.", request_id)
