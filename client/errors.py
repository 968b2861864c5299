"""Typed errors: one class per thing a caller does something different about."""

from typing import Any


class PaymentsError(Exception):
    """An error answer of the payment API (``status`` and the contract's ``error`` object)."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(f"{status} {error.get('type')}/{error.get('code')}: {error.get('message')}")
        self.status = status
        self.type: str = error.get("type", "")
        self.code: str = error.get("code", "")
        self.message: str = error.get("message", "")
        self.param: str | None = error.get("param")
        self.request_id: str = error.get("request_id", "")
        self.idempotency_key: str | None = None  # the call's key: the same call with it settles what is pending


class InvalidRequest(PaymentsError):
    """400, 413, 415: fix the request; ``param`` names the field."""


class InvalidId(InvalidRequest, ValueError):
    """An id that is not shaped as the service issues them, refused before anything is sent: only such ids are put
    in a path, so no ``.``, ``..``, ``/`` or escape of them can reach another route. ``param`` names the argument;
    the value is never repeated (it could be a card number)."""

    def __init__(self, param: str, expected: str) -> None:
        message = f"{param} must be {expected}; nothing was sent."
        super().__init__(0, {"type": "invalid_request_error", "code": "invalid_id", "message": message, "param": param})


class PaymentStatusConflict(InvalidRequest):
    """400 ``payment_not_capturable``, ``payment_not_cancelable`` or ``payment_not_refundable``: the payment's status
    does not allow the call (already captured, cancelled or expired; or the loser of a capture and a cancel that
    raced). The same call will not succeed: read the payment to see what it became."""


STATUS_CONFLICTS = frozenset({"payment_not_capturable", "payment_not_cancelable", "payment_not_refundable"})


class NotFound(PaymentsError):
    """404: no such object for this merchant."""


class PermissionDenied(PaymentsError):
    """403: unsigned, badly signed, or a principal that acts for no merchant."""


class CardDeclined(PaymentsError):
    """402: declined by the gateway or a rule; ``decline_code`` says why, ``payment_id`` is the failed payment."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(status, error)
        self.decline_code: str | None = error.get("decline_code")
        self.payment_id: str | None = error.get("payment_id")


class IdempotencyConflict(PaymentsError):
    """409 (still in flight, retried until the budget ends) or 422 (the key was used with another body)."""


class GatewayPending(PaymentsError):
    """502/504 after every retry: the payment (or refund) is pending; the same call with the same key settles it."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(status, error)
        self.payment_id: str | None = error.get("payment_id")
        self.refund_id: str | None = error.get("refund_id")


class GatewayFailed(PaymentsError):
    """402 ``gateway_error`` (``payment_failed``, ``refund_failed``): the payment (or refund) was given up, since the
    gateway never made it. Final and not retried: no money moved, and only a new key (a new call) tries again."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(status, error)
        self.payment_id: str | None = error.get("payment_id")
        self.refund_id: str | None = error.get("refund_id")


class AnswerLost(PaymentsError):
    """No answer within the budget (network errors, partial or unreadable answers): the outcome is unknown, and
    the same call with the same ``idempotency_key`` settles it without charging twice."""

    def __init__(self, message: str) -> None:
        super().__init__(0, {"type": "network_error", "code": "answer_lost", "message": message})


class ServiceError(PaymentsError):
    """500, 503 after every retry, or a redirect (not followed)."""


class RateLimited(ServiceError):
    """429 after every retry: the merchant is over its own request rate. ``retry_after``: the seconds the API last
    asked to wait (``Retry-After``), when it said."""

    def __init__(self, status: int, error: dict[str, Any], retry_after: float | None = None) -> None:
        super().__init__(status, error)
        self.retry_after = retry_after


def error_for(status: int, error: dict[str, Any]) -> PaymentsError:
    if status == 402 and error.get("type") == "gateway_error":
        return GatewayFailed(status, error)
    if status == 400 and error.get("code") in STATUS_CONFLICTS:
        return PaymentStatusConflict(status, error)
    kind: type[PaymentsError] = {
        402: CardDeclined,
        403: PermissionDenied,
        404: NotFound,
        409: IdempotencyConflict,
        422: IdempotencyConflict,
        429: RateLimited,
        502: GatewayPending,
        504: GatewayPending,
    }.get(status, InvalidRequest if 400 <= status < 500 and status != 429 else ServiceError)
    return kind(status, error)


class WebhookError(ValueError):
    """A webhook delivery that ``verify_webhook`` refuses: answer it with a ``4xx`` and do not act on it."""


class WebhookSignatureError(WebhookError):
    """The delivery is not proven to come from the service: ``reason`` is ``malformed_header`` (no ``t=`` of digits
    or no ``v1=`` of hex digits), ``no_matching_signature`` (another body, another secret) or
    ``outside_tolerance`` (``t`` too far from now: a replayed delivery, or a clock far off)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class WebhookPayloadError(WebhookError):
    """The signature matches, but the body is not an event (JSON with ``id``, ``type``, ``created_at`` and
    ``data.object``)."""
