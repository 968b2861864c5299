"""PaymentsClient: the payment API with SigV4, typed results and errors, and retries that never charge twice.

Every call that writes carries an idempotency key, made once per logical call (or given by the caller). A lost
answer (a network error, a partial body, a success without the API's JSON), ``409`` (the first attempt still in
flight), ``429`` (no sooner than its ``Retry-After``), ``502``, ``503`` or ``504`` is retried with the *same* key
after a jittered, doubling wait, until the call's time budget is spent: the service then replays the first answer,
or settles the pending payment by its reference, so a retry after a lost answer never charges again. A payment or
refund that was given up is final (``GatewayFailed``), never retried. Only ids shaped as the service issues them are
put in paths (``InvalidId`` before anything is sent), and redirects are not followed (a signed request, and a card
in its body, go to the configured host only)."""

import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlencode

import requests

from client.errors import AnswerLost, InvalidId, PaymentsError, RateLimited, error_for
from client.models import (
    Balance,
    Checkpoint,
    Delivery,
    Event,
    LedgerEntry,
    Payment,
    PublicKey,
    Refund,
    Settlement,
    SettlementPage,
    Token,
    WebhookEndpoint,
)
from client.signing import SigV4

RETRIED_STATUSES = frozenset({409, 429, 502, 503, 504})
# The answer was lost on the way (a partial body included): the outcome is unknown, and the same key settles it.
NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
DEFAULT_BUDGET_SECONDS = 60.0
FIRST_WAIT_SECONDS = 0.25
MAX_WAIT_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 35.0  # the API answers within 29 s


class PaymentsClient:
    def __init__(
        self,
        base_url: str,
        auth: requests.auth.AuthBase | None = None,
        budget_seconds: float = DEFAULT_BUDGET_SECONDS,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth if auth is not None else SigV4.from_chain()
        self.budget_seconds = budget_seconds
        self.session = session or requests.Session()
        self.sleep = sleep
        self.clock = clock

    # -- the routes ---------------------------------------------------------------

    def tokenize(
        self, number: str, exp_month: int, exp_year: int, holder_name: str | None = None, key: str | None = None
    ) -> Token:
        card: dict[str, Any] = {"number": number, "exp_month": exp_month, "exp_year": exp_year}
        if holder_name is not None:
            card["holder_name"] = holder_name
        body, _ = self._call("POST", "/tokens", {"card": card}, key or _new_key())
        return Token.of(body)

    def pay(
        self,
        amount: int,
        currency: str,
        token: str | None = None,
        card: dict[str, Any] | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        key: str | None = None,
        capture: bool = True,
    ) -> Payment:
        """Charge a token (or a card given with its CVC), or with ``capture=False`` only authorise it (``authorize``);
        raises ``CardDeclined``, ``GatewayFailed`` (given up: the gateway never charged it) or, once the budget is
        spent on a gateway that does not answer, ``GatewayPending``."""
        source = {"token": token} if token is not None else {"card": card}
        request: dict[str, Any] = {"amount": amount, "currency": currency, "source": source}
        if description is not None:
            request["description"] = description
        if metadata:
            request["metadata"] = metadata
        if not capture:
            request["capture"] = False
        body, replayed = self._call("POST", "/payments", request, key or _new_key())
        return Payment.of(body, replayed)

    def authorize(
        self,
        amount: int,
        currency: str,
        token: str | None = None,
        card: dict[str, Any] | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        key: str | None = None,
    ) -> Payment:
        """Authorise only: the payment is ``requires_capture`` until ``capture`` or ``cancel``, or until its
        ``capture_before``, when reconciliation cancels it (``cancellation_reason`` ``"expired"``). Raises as
        ``pay``."""
        return self.pay(amount, currency, token, card, description, metadata, key, capture=False)

    def capture(self, payment_id: str, amount: int | None = None, key: str | None = None) -> Payment:
        """Capture ``amount`` (default: all) of an authorisation, once; the rest is released. Raises
        ``PaymentStatusConflict`` when the payment is not ``requires_capture``, ``InvalidRequest``
        (``amount_too_large``) for more than it holds, and ``GatewayPending`` as ``pay`` does."""
        request = {"amount": amount} if amount is not None else {}
        body, replayed = self._call(
            "POST", f"/payments/{_path_id('pay', payment_id, 'payment_id')}/capture", request, key or _new_key()
        )
        return Payment.of(body, replayed)

    def cancel(self, payment_id: str, key: str | None = None) -> Payment:
        """Release an authorisation: ``canceled``. Raises ``PaymentStatusConflict`` when the payment is not
        ``requires_capture``, and ``GatewayPending`` as ``pay`` does."""
        body, replayed = self._call(
            "POST", f"/payments/{_path_id('pay', payment_id, 'payment_id')}/cancel", {}, key or _new_key()
        )
        return Payment.of(body, replayed)

    def refund(self, payment_id: str, amount: int | None = None, key: str | None = None) -> Refund:
        request = {"amount": amount} if amount is not None else {}
        body, replayed = self._call(
            "POST", f"/payments/{_path_id('pay', payment_id, 'payment_id')}/refunds", request, key or _new_key()
        )
        return Refund.of(body, replayed)

    def payment(self, payment_id: str) -> Payment:
        body, _ = self._call("GET", f"/payments/{_path_id('pay', payment_id, 'payment_id')}")
        return Payment.of(body)

    def ledger(self, payment_id: str) -> list[LedgerEntry]:
        body, _ = self._call("GET", f"/payments/{_path_id('pay', payment_id, 'payment_id')}/ledger")
        return [LedgerEntry.of(entry) for entry in body["entries"]]

    def payments(self, page_size: int = 100) -> Iterator[Payment]:
        """Every payment of the merchant, newest first, page by page (each from the previous page's last id, so
        payments made meanwhile never repeat or skip one)."""
        return (Payment.of(item) for item in self._pages("/payments", page_size, "id"))

    def balances(self) -> list[Balance]:
        body, _ = self._call("GET", "/balances")
        return [Balance(b["account"], b["currency"], b["amount"]) for b in body["balances"]]

    def latest_checkpoint(self) -> Checkpoint:
        body, _ = self._call("GET", "/ledger/checkpoints/latest")
        return Checkpoint.of(body)

    def checkpoints(self, page_size: int = 100) -> Iterator[Checkpoint]:
        """Every signed checkpoint of the merchant's ledger, newest first, page by page (each from the previous
        page's last sequence)."""
        return (Checkpoint.of(item) for item in self._pages("/ledger/checkpoints", page_size, "sequence"))

    def checkpoint(self, sequence: int) -> Checkpoint:
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
            raise InvalidId("sequence", "a whole number from 1")
        body, _ = self._call("GET", f"/ledger/checkpoints/{sequence}")
        return Checkpoint.of(body)

    def public_key(self) -> PublicKey:
        body, _ = self._call("GET", "/ledger/public-key")
        return PublicKey(body["key_id"], body["pem"])

    # -- settlements ------------------------------------------------------------------

    def list_settlements(self, limit: int | None = None, starting_after: str | None = None) -> SettlementPage:
        """One page of the merchant's share of each gateway settlement, newest first: ``limit`` 1-100 (the API's
        default: 10), after the settlement ``starting_after`` (the last id of the previous page). Each settlement's
        ``mismatches`` is None here: read one with ``get_settlement`` to see them. An unknown or another merchant's
        ``starting_after``: ``InvalidRequest`` naming it."""
        query: dict[str, str | int] = {}
        if limit is not None:
            query["limit"] = limit
        if starting_after is not None:
            query["starting_after"] = starting_after
        body, _ = self._call("GET", "/settlements" + (f"?{urlencode(query)}" if query else ""))
        return SettlementPage(tuple(Settlement.of(item) for item in body["data"]), body["has_more"])

    def settlements(self, page_size: int = 100) -> Iterator[Settlement]:
        """Every settlement share of the merchant, newest first, page by page (each from the previous page's last
        id); their ``mismatches`` are None, as in ``list_settlements``."""
        return (Settlement.of(item) for item in self._pages("/settlements", page_size, "id"))

    def get_settlement(self, settlement_id: str) -> Settlement:
        """The merchant's share of one settlement with its mismatches (an empty tuple when it is reconciled).
        ``NotFound`` for an unknown id, another merchant's, or a settlement still being imported."""
        body, _ = self._call("GET", f"/settlements/{_path_id('st', settlement_id, 'settlement_id')}")
        return Settlement.of(body)

    # -- events and webhooks ----------------------------------------------------------

    def events(self, type: str | None = None, page_size: int = 100) -> Iterator[Event]:
        """Every event of the merchant kept (30 days at least), of ``type`` only when given, newest first, page by
        page."""
        filters = {"type": type} if type is not None else {}
        return (Event.of(item) for item in self._pages("/events", page_size, "id", filters))

    def event(self, event_id: str) -> Event:
        body, _ = self._call("GET", f"/events/{_path_id('evt', event_id, 'event_id')}")
        return Event.of(body)

    def event_deliveries(self, event_id: str) -> list[Delivery]:
        """Each attempt to deliver the event, to each endpoint: its time, and its HTTP status or error."""
        body, _ = self._call("GET", f"/events/{_path_id('evt', event_id, 'event_id')}/deliveries")
        return [Delivery.of(attempt) for attempt in body["data"]]

    def redeliver(self, event_id: str, key: str | None = None) -> None:
        """Sends the event again to each endpoint subscribed to its type (``202``: delivered from then on, as any
        event is, with retries)."""
        self._call("POST", f"/events/{_path_id('evt', event_id, 'event_id')}/redeliver", {}, key or _new_key())

    def create_webhook_endpoint(self, url: str, events: Sequence[str], key: str | None = None) -> WebhookEndpoint:
        """Registers ``url`` for the event types ``events`` (``["*"]``: all). Its ``secret`` is shown in this answer
        only: keep it to verify deliveries (``verify_webhook``). The service keeps no secret for replays, so when the
        first answer was lost and the retry is answered without one, the SDK deletes that endpoint (nobody could
        verify its deliveries) and registers the URL again under a new key."""
        if isinstance(events, str):
            raise TypeError('events is a list of event types, such as ["payment.succeeded"] or ["*"]')
        request = {"url": url, "events": list(events)}
        body, _ = self._call("POST", "/webhook_endpoints", request, key or _new_key())
        if body.get("secret") is None:
            self.delete_webhook_endpoint(body["id"])
            body, _ = self._call("POST", "/webhook_endpoints", request, _new_key())
        return WebhookEndpoint.of(body)

    def webhook_endpoints(self) -> list[WebhookEndpoint]:
        """The merchant's endpoints (without their secrets)."""
        body, _ = self._call("GET", "/webhook_endpoints")
        return [WebhookEndpoint.of(endpoint) for endpoint in body["data"]]

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """Removes the endpoint: no delivery is sent to it afterwards."""
        self._call("DELETE", f"/webhook_endpoints/{_path_id('we', endpoint_id, 'endpoint_id')}")

    def _pages(
        self, path: str, page_size: int, cursor: str, filters: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item a listing route returns (narrowed by ``filters``), page by page: each page starts after the
        previous page's last item (its ``cursor`` field)."""
        query: dict[str, str | int] = {"limit": page_size, **(filters or {})}
        while True:
            body, _ = self._call("GET", f"{path}?{urlencode(query)}")
            yield from body["data"]
            if not body["has_more"] or not body["data"]:
                return
            query["starting_after"] = body["data"][-1][cursor]

    # -- one logical call ------------------------------------------------------------

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """The answer's body and whether it was replayed; every attempt carries the same ``key``, and an error
        raised once the budget is spent carries it too (``idempotency_key``), so the caller can settle later."""
        headers = {"Idempotency-Key": key} if key else {}
        deadline = self.clock() + self.budget_seconds
        attempt = 0
        while True:
            try:
                return self._attempt(method, path, body, headers, deadline)
            except _Retryable as retryable:
                failure = retryable.error
            except PaymentsError as final:
                final.idempotency_key = key
                raise
            wait = random.uniform(0, min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2**attempt))  # full jitter
            if isinstance(failure, RateLimited) and failure.retry_after is not None:
                wait = max(wait, failure.retry_after)  # no sooner than the API asked
            if self.clock() + wait >= deadline:
                failure.idempotency_key = key
                raise failure
            self.sleep(wait)
            attempt += 1

    def _attempt(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str], deadline: float
    ) -> tuple[dict[str, Any], bool]:
        """One request, abandoned when the budget ends however slowly the server answers (a socket timeout bounds
        each read, not the whole answer)."""
        remaining = max(deadline - self.clock(), 0.0)
        outcome: list[requests.Response | BaseException] = []

        def send() -> None:
            try:
                outcome.append(
                    self.session.request(
                        method,
                        self.base_url + path,
                        json=body,
                        headers=headers,
                        auth=self.auth,
                        timeout=min(REQUEST_TIMEOUT_SECONDS, max(remaining, 0.1)),
                        allow_redirects=False,  # a signed request and its card data go to this host only
                    )
                )
            except BaseException as error:
                outcome.append(error)

        worker = threading.Thread(target=send, daemon=True)
        worker.start()
        worker.join(remaining)
        if not outcome:
            raise _Retryable(AnswerLost("No answer within the call's time budget."))
        response = outcome[0]
        if isinstance(response, NETWORK_ERRORS):
            raise _Retryable(AnswerLost(f"The answer was lost: {type(response).__name__}."))
        if isinstance(response, BaseException):
            raise response
        if 200 <= response.status_code < 300:
            try:
                answer = response.json()
            except ValueError:
                raise _Retryable(AnswerLost(f"HTTP {response.status_code} without the API's JSON.")) from None
            return answer, response.headers.get("Idempotent-Replayed") == "true"
        error = error_for(response.status_code, _error_of(response))
        if isinstance(error, RateLimited):
            error.retry_after = _seconds(response.headers.get("Retry-After"))
        if response.status_code in RETRIED_STATUSES:
            raise _Retryable(error)
        raise error


class _Retryable(Exception):
    def __init__(self, error: PaymentsError) -> None:
        super().__init__(str(error))
        self.error = error


def _path_id(prefix: str, identifier: object, param: str) -> str:
    """``identifier`` if it is shaped as the service issues ids of type ``prefix`` (``lambdas.domain.ids``: the
    prefix, ``_``, then letters and digits), else ``InvalidId``. Escaping cannot keep a ``.`` or ``..`` segment out
    of a path (``requests`` decodes ``%2E`` again before sending); an id with no character but these can."""
    if not isinstance(identifier, str) or re.fullmatch(rf"{prefix}_[A-Za-z0-9]+", identifier) is None:
        raise InvalidId(param, f"an id of the form {prefix}_ followed by letters and digits")
    return identifier


def _seconds(retry_after: str | None) -> float | None:
    """A ``Retry-After`` in seconds (its HTTP-date form, which the API never sends, is not read)."""
    if retry_after is None or not (retry_after.isascii() and retry_after.isdigit()):  # "²" passes isdigit alone
        return None
    return float(retry_after)


def _new_key() -> str:
    return f"sdk-{uuid.uuid4()}"


def _error_of(response: requests.Response) -> dict[str, Any]:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return {"type": "api_error", "code": "unreadable_answer", "message": f"HTTP {response.status_code}"}
    return error if isinstance(error, dict) else {"type": "api_error", "message": str(error)}


__all__ = ["PaymentsClient", "PaymentsError"]
