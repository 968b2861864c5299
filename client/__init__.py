"""The payment API's Python SDK: SigV4 from botocore's credential chain, typed results and errors, and retries
with one idempotency key per logical call (``client.client``). ``python -m client`` is its CLI."""

from client.client import PaymentsClient
from client.errors import (
    AnswerLost,
    CardDeclined,
    GatewayFailed,
    GatewayPending,
    IdempotencyConflict,
    InvalidId,
    InvalidRequest,
    NotFound,
    PaymentsError,
    PaymentStatusConflict,
    PermissionDenied,
    RateLimited,
    ServiceError,
)
from client.models import Balance, CardSummary, Checkpoint, LedgerEntry, Payment, PublicKey, Refund, Token
from client.signing import SigV4

__all__ = [
    "AnswerLost",
    "Balance",
    "CardDeclined",
    "CardSummary",
    "Checkpoint",
    "GatewayFailed",
    "GatewayPending",
    "IdempotencyConflict",
    "InvalidId",
    "InvalidRequest",
    "LedgerEntry",
    "NotFound",
    "Payment",
    "PaymentStatusConflict",
    "PaymentsClient",
    "PaymentsError",
    "PermissionDenied",
    "PublicKey",
    "RateLimited",
    "Refund",
    "ServiceError",
    "SigV4",
    "Token",
]
