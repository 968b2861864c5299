"""Sparkle gateway client (implements ``lambdas.gateway.Gateway``) over HTTP.

- A redirect is never followed: card data goes to the configured base URL only.
- Every answer is checked against the request before it is believed; one that does not match, or cannot be read,
  is a ``GatewayInvalidAnswer``, never a decline.
- Failures that may pass (429, 5xx, 409, a lost connection or answer) are retried with the same idempotency key,
  with backoff, and only within the request's deadline (``lambdas.deadline``).
- A ``422`` (this key was used with another body) is ``GatewayOutcomeUnknown``: the first request with the key may
  have moved money, and only a lookup by reference can say.
- A charge id goes into a URL path only when it is one (``CHARGE_ID``), so no id can steer a request elsewhere; so
  does a settlement id (``is_settlement_id``).
"""

import json
import re
import time
from collections.abc import Callable
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from lambdas import deadline
from lambdas.domain.cards import Card, contains_card_number
from lambdas.domain.settlements import SETTLEMENT_LINE_TYPES, Settlement, SettlementLine, is_settlement_id
from lambdas.gateway import (
    CHARGE_STATUSES,
    REFUND_STATUSES,
    Charge,
    GatewayInvalidAnswer,
    GatewayOutcomeUnknown,
    GatewayRefund,
    GatewayRejected,
    GatewayUnavailable,
)
from lambdas.gateway_settings import (
    CHARGE_CAPTURE,
    CHARGE_VOID,
    CHARGES,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RETRY,
    REFUNDS,
    SETTLEMENT_LINES,
    SETTLEMENTS,
    RetryPolicy,
)
from lambdas.metrics import time_gateway_attempt

MAX_ANSWER_BYTES = 256 * 1024  # the gateway's answers are well under 1 KiB
# An attempt is not started (nor a backoff slept) when less than this is left before the deadline.
MIN_ATTEMPT_SECONDS = 0.25
CHARGE_ID = re.compile(r"ch_[A-Za-z0-9]{1,255}")
SETTLEMENT_LINE_ID = re.compile(r"sl_[A-Za-z0-9]{1,255}")
MAX_LINES_PER_PAGE = 100


class SparkleClient:
    def __init__(
        self,
        base_url: str,
        secret_key: Callable[[], str],
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret_key = secret_key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry = retry
        self.session = session or requests.Session()

    def charge(
        self, reference: str, amount: int, currency: str, card: Card, idempotency_key: str, capture: bool = True
    ) -> Charge:
        body = {
            "amount": amount,
            "currency": currency,
            "reference": reference,
            "card": {
                "number": card.number.digits,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
                **({"cvc": card.cvc} if card.cvc else {}),
            },
            **({} if capture else {"capture": False}),
        }
        charge = _charge(self._send("POST", CHARGES, json=body, idempotency_key=idempotency_key), reference)
        if charge.amount != amount or charge.currency.upper() != currency.upper():
            raise GatewayInvalidAnswer(
                f"charge {charge.id} is for {charge.amount} {charge.currency}, not the {amount} {currency} asked for"
            )
        if charge.status not in ("declined", "succeeded" if capture else "authorized"):
            asked = "a charge" if capture else "an authorisation"
            raise GatewayInvalidAnswer(f"charge {charge.id}: {charge.status} is no answer to {asked}")
        return charge

    def capture(self, charge_id: str, amount: int, reference: str, idempotency_key: str) -> Charge:
        charge = self._change(CHARGE_CAPTURE, charge_id, {"amount": amount}, reference, idempotency_key)
        if charge.status != "succeeded" or charge.amount_captured != amount:
            raise GatewayInvalidAnswer(
                f"capture of {charge_id}: {charge.status} with {charge.amount_captured} captured, not {amount}"
            )
        return charge

    def void(self, charge_id: str, reference: str, idempotency_key: str) -> Charge:
        charge = self._change(CHARGE_VOID, charge_id, {}, reference, idempotency_key)
        if charge.status != "voided":
            raise GatewayInvalidAnswer(f"void of {charge_id}: {charge.status}, not voided")
        return charge

    def find_charge(self, reference: str) -> Charge | None:
        """The charge made for ``reference``, if the gateway has one (``preferred_charge`` of several)."""
        return preferred_charge([_charge(item, reference) for item in self._find(CHARGES, reference)])

    def refund(self, charge_id: str, amount: int, reference: str, idempotency_key: str) -> GatewayRefund:
        body = {"charge": charge_id, "amount": amount, "reference": reference}
        refund = _refund(self._send("POST", REFUNDS, json=body, idempotency_key=idempotency_key), reference)
        if refund.charge_id != charge_id or refund.amount != amount:
            raise GatewayInvalidAnswer(
                f"refund {refund.id} is of {refund.amount} from {refund.charge_id}, not of {amount} from {charge_id}"
            )
        return refund

    def find_refund(self, reference: str) -> GatewayRefund | None:
        """The refund made for ``reference``, if the gateway has one."""
        found = [_refund(item, reference) for item in self._find(REFUNDS, reference)]
        return found[0] if found else None

    def settlements(self, created_after: int) -> list[Settlement]:
        """The settlements created after ``created_after`` (unix seconds), oldest first, each checked."""
        body = self._send("GET", SETTLEMENTS, params={"created_after": created_after})
        found = body.get("data")
        if not isinstance(found, list):
            raise GatewayInvalidAnswer("settlements: no list of settlements")
        return [_settlement(item) for item in found]

    def settlement_lines(
        self, settlement_id: str, starting_after: str | None = None, limit: int = MAX_LINES_PER_PAGE
    ) -> tuple[list[SettlementLine], bool]:
        """A page of a settlement's lines and whether more follow. A settlement or line id that is not one is
        refused unsent, as the invalid answer it came from."""
        if not is_settlement_id(settlement_id):
            raise GatewayInvalidAnswer("settlement lines: the settlement id is not one, nothing was sent")
        if starting_after is not None and not SETTLEMENT_LINE_ID.fullmatch(starting_after):
            raise GatewayInvalidAnswer("settlement lines: the line id to start after is not one, nothing was sent")
        if not 1 <= limit <= MAX_LINES_PER_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_LINES_PER_PAGE}")
        params: dict[str, Any] = {"limit": limit, **({"starting_after": starting_after} if starting_after else {})}
        body = self._send("GET", SETTLEMENT_LINES, path_id=settlement_id, params=params)
        found, has_more = body.get("data"), body.get("has_more")
        if not isinstance(found, list) or not isinstance(has_more, bool):
            raise GatewayInvalidAnswer("settlement lines: no list of lines and has_more")
        if len(found) > limit or (has_more and not found):
            raise GatewayInvalidAnswer("settlement lines: a page longer than asked, or empty with more to follow")
        return [_settlement_line(item) for item in found], has_more

    def _change(self, route: str, charge_id: str, body: dict[str, Any], reference: str, key: str) -> Charge:
        """POST ``body`` to one of a charge's actions; the charge as answered, checked to be the one asked about. An
        id that is not a charge id is refused unsent, as the invalid answer it came from."""
        if not CHARGE_ID.fullmatch(charge_id):
            raise GatewayInvalidAnswer(f"{route}: the charge id is not one, nothing was sent")
        charge = _charge(self._send("POST", route, idempotency_key=key, path_id=charge_id, json=body), reference)
        if charge.id != charge_id:
            raise GatewayInvalidAnswer(f"{route}: answered with charge {charge.id}, not {charge_id}")
        return charge

    def _find(self, path: str, reference: str) -> list[Any]:
        found = self._send("GET", path, params={"reference": reference}).get("data")
        if not isinstance(found, list):
            raise GatewayInvalidAnswer(f"lookup of {reference}: no list of results")
        return found

    def _send(
        self, method: str, route: str, idempotency_key: str | None = None, path_id: str | None = None, **request: Any
    ) -> dict[str, Any]:
        """Send to ``route`` (``path_id``, checked by the caller, in place of its ``{id}``), retrying what may pass
        with the same key while time is left; the answer's JSON object, or raise."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        try:
            secret_key = self.secret_key()
        except Exception as error:  # Secrets Manager refused or timed out: nothing was sent
            raise GatewayUnavailable(f"the gateway's secret key could not be read ({type(error).__name__})") from None
        # One of REQUESTS (gateway_settings): how errors and the metric name it, never with an id.
        request_name = f"{method} {route}"
        path = route if path_id is None else route.replace("{id}", path_id)
        may_have_arrived = False  # did an attempt possibly reach the gateway without a usable answer?
        delays = self.retry.delays()
        failures: list[str] = []
        while True:
            left = deadline.remaining()
            if left < MIN_ATTEMPT_SECONDS:
                break
            started = time.monotonic()
            ends = started + min(self.connect_timeout + self.read_timeout, left)
            try:
                response = self.session.request(
                    method,
                    f"{self.base_url}{path}",
                    headers={"Authorization": f"Bearer {secret_key}", **headers},
                    timeout=(min(self.connect_timeout, left), min(self.read_timeout, left)),
                    allow_redirects=False,
                    stream=True,
                    **request,
                )
                content = _read_until(response, ends)
            except requests.RequestException as error:  # refused, timed out, cut off mid-answer, undecodable
                never_connected = _never_connected(error)
                may_have_arrived = may_have_arrived or not never_connected
                failures.append("no connection" if never_connected else "no answer")
                time_gateway_attempt(request_name, "no_answer", time.monotonic() - started)
            else:
                status = response.status_code
                result = "answered" if 200 <= status < 300 else "retryable" if _may_pass(status) else "refused"
                time_gateway_attempt(request_name, result, time.monotonic() - started)
                if result == "answered":
                    return _json_object(content, status, request_name)
                if result == "refused":
                    raise _failure(status, content, request_name)
                may_have_arrived = may_have_arrived or status == 409  # the first request with the key still runs
                failures.append(str(status))
            delay = next(delays, None)
            if delay is None or deadline.remaining() - delay < MIN_ATTEMPT_SECONDS:
                break
            time.sleep(delay)
        summary = f"{request_name}: {', '.join(failures) or 'no time left to try'}"
        raise GatewayOutcomeUnknown(summary) if may_have_arrived else GatewayUnavailable(summary)


def preferred_charge(found: list[Charge]) -> Charge | None:
    """Of the charges made for one reference, the one that moved money, else one that holds it, else the first."""
    for status in ("succeeded", "authorized"):
        for charge in found:
            if charge.status == status:
                return charge
    return found[0] if found else None


def _may_pass(status: int) -> bool:
    """Worth another attempt with the same key: in flight (409), throttled (429), or the gateway's own trouble."""
    return status in (409, 429) or status >= 500


def _read_until(response: requests.Response, ends: float) -> bytes:
    """The answer's body, read by the time the attempt ``ends``: the read timeout bounds each read of the socket,
    not the answer, so a gateway trickling bytes would otherwise hold the request past any deadline."""
    content = bytearray()
    with response:
        for byte in response.iter_content(1):  # read as it arrives: a larger read waits for all its bytes
            content += byte
            if time.monotonic() > ends:
                raise requests.Timeout("the answer took longer than the attempt may")
            if len(content) > MAX_ANSWER_BYTES:
                raise GatewayInvalidAnswer(f"an answer over {MAX_ANSWER_BYTES} bytes")
    return bytes(content)


def _parsed(content: bytes) -> Any:
    """The JSON value of ``content``, or None when it is not JSON (however deeply nested)."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return None


def _failure(status: int, content: bytes, request: str) -> Exception:
    """What an answer that will not change on retry means."""
    if status == 400:
        error = _error_of(content)
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
        if contains_card_number(message):  # the gateway's text may be logged or shown: it must not carry a card
            message = "(withheld: it held a card number)"
        return GatewayRejected(status, code, message)
    if status == 422:
        return GatewayOutcomeUnknown(f"{request}: 422, the key was used with another body; its outcome is unknown")
    if 300 <= status < 400:
        return GatewayUnavailable(f"{request}: {status} redirect, not followed")
    return GatewayUnavailable(f"{request}: {status}")  # 401/403/404 and the like: configuration, not chance


def _never_connected(error: Exception) -> bool:
    """True when the request cannot have reached the gateway (refused, or no connection in time)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


def _json_object(content: bytes, status: int, request: str) -> dict[str, Any]:
    body = _parsed(content)
    if not isinstance(body, dict):
        raise GatewayInvalidAnswer(f"{request}: {status} without a JSON object")
    return body


def _error_of(content: bytes) -> dict[str, Any]:
    body = _parsed(content)
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _field(body: Any, name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise GatewayInvalidAnswer(f"{what}: {name} missing or not {getattr(kind, '__name__', kind)}")
    return value


def _checked(body: Any, reference: str, statuses: tuple[str, ...], what: str) -> tuple[str, str]:
    """(id, status) of an answer whose fields are all of the right type, whose status is known and whose reference
    is the one asked for."""
    found_id, status = _field(body, "id", str, what), _field(body, "status", str, what)
    if status not in statuses:
        raise GatewayInvalidAnswer(f"{what} {found_id}: unknown status {status[:40]!r}")
    if _field(body, "reference", str, what) != reference:
        raise GatewayInvalidAnswer(f"{what} {found_id}: for another reference than {reference}")
    return found_id, status


def _charge(body: Any, reference: str) -> Charge:
    """The charge answered. Absent ``amount_captured`` is all of a succeeded charge (a plain charge's answer may not
    carry it), absent ``amount_capturable`` is none, absent ``expires`` is no expiry."""
    charge_id, status = _checked(body, reference, CHARGE_STATUSES, "charge")
    if not CHARGE_ID.fullmatch(charge_id):  # it could never be captured, voided or refunded
        raise GatewayInvalidAnswer(f"charge id {charge_id[:40]!r} is not one")
    amount = _field(body, "amount", int, "charge")
    captured = _field(body, "amount_captured", int, "charge") if "amount_captured" in body else None
    if captured is None:
        captured = amount if status == "succeeded" else 0
    capturable = _field(body, "amount_capturable", int, "charge") if "amount_capturable" in body else 0
    refunded = _field(body, "amount_refunded", int, "charge")
    if amount <= 0 or not (0 <= captured <= amount and 0 <= capturable <= amount and 0 <= refunded <= captured):
        raise GatewayInvalidAnswer(f"charge {charge_id}: amounts out of range")
    decline_code, expires = body.get("decline_code"), body.get("expires")
    if decline_code is not None and not isinstance(decline_code, str):
        raise GatewayInvalidAnswer(f"charge {charge_id}: decline_code not a string")
    if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool)):
        raise GatewayInvalidAnswer(f"charge {charge_id}: expires not an integer")
    currency = _field(body, "currency", str, "charge")
    return Charge(charge_id, status, decline_code, amount, currency, reference, captured, capturable, expires)


def _refund(body: Any, reference: str) -> GatewayRefund:
    refund_id, status = _checked(body, reference, REFUND_STATUSES, "refund")
    amount = _field(body, "amount", int, "refund")
    if amount <= 0:
        raise GatewayInvalidAnswer(f"refund {refund_id}: amount out of range")
    return GatewayRefund(refund_id, _field(body, "charge", str, "refund"), amount, status, reference)


def _optional_str(body: dict[str, Any], name: str, what: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise GatewayInvalidAnswer(f"{what}: {name} neither a string nor null")
    return value


def _settlement(body: Any) -> Settlement:
    """A settlement as listed: an id that is one, integer amounts, and ``net`` = ``gross`` - ``fees``."""
    settlement_id = _field(body, "id", str, "settlement")
    if not is_settlement_id(settlement_id):
        raise GatewayInvalidAnswer(f"settlement id {settlement_id[:40]!r} is not one")
    what = f"settlement {settlement_id}"
    gross, fees, net = (_field(body, name, int, what) for name in ("gross", "fees", "net"))
    if net != gross - fees:
        raise GatewayInvalidAnswer(f"{what}: net {net} is not gross {gross} less fees {fees}")
    lines = _field(body, "lines", int, what)
    if lines < 0:
        raise GatewayInvalidAnswer(f"{what}: a negative number of lines")
    currency, created = _field(body, "currency", str, what), _field(body, "created", int, what)
    return Settlement(settlement_id, currency, created, gross, fees, net, lines)


def _settlement_line(body: Any) -> SettlementLine:
    """A settlement line: an id that is one, a known type, integer amount and fee, ids and reference string or
    null."""
    line_id = _field(body, "id", str, "settlement line")
    if not SETTLEMENT_LINE_ID.fullmatch(line_id):
        raise GatewayInvalidAnswer(f"settlement line id {line_id[:40]!r} is not one")
    what = f"settlement line {line_id}"
    line_type = _field(body, "type", str, what)
    if line_type not in SETTLEMENT_LINE_TYPES:
        raise GatewayInvalidAnswer(f"{what}: unknown type {line_type[:40]!r}")
    charge_id, refund_id, reference = (_optional_str(body, name, what) for name in ("charge", "refund", "reference"))
    amount, fee = _field(body, "amount", int, what), _field(body, "fee", int, what)
    currency = _field(body, "currency", str, what)
    return SettlementLine(line_id, line_type, charge_id, refund_id, reference, amount, fee, currency)
