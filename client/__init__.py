"""The payment API's Python SDK: SigV4 from botocore's credential chain, typed results and errors, and retries
with one idempotency key per logical call (``client.client``), and ``verify_webhook`` for the service's webhook
deliveries (``client.webhooks``). ``python -m client`` is its CLI."""

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
    WebhookError,
    WebhookPayloadError,
    WebhookSignatureError,
)
from client.models import (
    Balance,
    CardSummary,
    Checkpoint,
    Delivery,
    Event,
    LedgerEntry,
    Payment,
    PublicKey,
    Refund,
    Token,
    WebhookEndpoint,
)
from client.signing import SigV4
from client.webhooks import verify_webhook

__all__ = [
    "AnswerLost",
    "Balance",
    "CardDeclined",
    "CardSummary",
    "Checkpoint",
    "Delivery",
    "Event",
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
    "WebhookEndpoint",
    "WebhookError",
    "WebhookPayloadError",
    "WebhookSignatureError",
    "verify_webhook",
]
