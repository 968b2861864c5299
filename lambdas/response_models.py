"""The contract's response bodies as pydantic models: they document the API
(docs/openapi.json) and the tests check every body the presenters make against
them. The handlers never import this module."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lambdas.domain.cards import Brand
from lambdas.domain.events import EventType
from lambdas.domain.payments import CancellationReason, Direction, Status
from lambdas.domain.settlements import ShareStatus


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VaultedCard(_Body):
    brand: Brand
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str


class TokenResponse(_Body):
    token: str
    card: VaultedCard
    created_at: str


class PaymentCardView(_Body):
    brand: Brand
    last4: str
    fingerprint: str


class GatewayView(_Body):
    name: Literal["sparkle"]
    charge_id: str | None


class PaymentResponse(_Body):
    id: str
    status: Status
    amount: int
    currency: str
    amount_refunded: int
    amount_captured: int
    amount_capturable: int
    card: PaymentCardView
    gateway: GatewayView
    metadata: dict[str, str]
    created_at: str
    description: str | None = None
    decline_code: str | None = None
    capture_before: str | None = Field(default=None, description="an authorisation's expiry (RFC 3339)")
    cancellation_reason: CancellationReason | None = None


class RefundResponse(_Body):
    id: str
    payment_id: str
    amount: int
    status: Literal["succeeded"]
    created_at: str


class RefundView(_Body):
    """A refund as an event shows it: succeeded, or failed when it was given up."""

    id: str
    payment_id: str
    amount: int
    status: Literal["succeeded", "failed"]
    created_at: str


class SettlementResponse(_Body):
    """The merchant's share of one gateway settlement: its lines of the merchant's payments and refunds."""

    id: str = Field(description="st_…: the gateway's settlement")
    currency: str
    gross: int = Field(description="the sum of the lines' amounts (refunds negative), minor units")
    fees: int = Field(description="what the gateway kept for the lines")
    net: int = Field(description="gross - fees: what the gateway paid out")
    lines: int
    status: ShareStatus = Field(description="mismatched when any line or movement disagrees with the ledger")
    created_at: str


class SettlementMismatch(_Body):
    reference: str | None = Field(description="pay_… (a capture) or re_… (a refund)")
    gateway_line: str | None = Field(description="sl_…: the line; null for a movement no settlement listed")
    reason: Literal["amount_differs", "currency_differs", "not_settled"]
    ledger_amount: int | None = Field(description="what the ledger expects, signed as the line (refunds negative)")
    gateway_amount: int | None = Field(description="what the line says; null when no line listed it")


class SettlementDetailResponse(SettlementResponse):
    mismatches: list[SettlementMismatch]


class SettlementListResponse(_Body):
    data: list[SettlementResponse] = Field(description="newest first, without their mismatches")
    has_more: bool


class EventData(_Body):
    object: PaymentResponse | RefundView | SettlementDetailResponse = Field(
        description="the payment (payment.* events), the refund (refund.* events) or the merchant's share of the "
        "settlement (settlement.* events) as GET showed it right after the change"
    )


class EventResponse(_Body):
    id: str
    type: EventType
    created_at: str
    data: EventData


class EventListResponse(_Body):
    data: list[EventResponse] = Field(description="newest first")
    has_more: bool


class LedgerEntry(_Body):
    id: str
    account: str
    direction: Direction
    amount: int
    currency: str
    created_at: str
    chain: int | None = Field(description="the chain that holds it (docs/api.md); null for an entry from before chains")
    sequence: int | None = Field(description="its place in its chain (1, 2, ...); null for an entry from before chains")
    hash: str | None = Field(description="SHA-256 of the chain's previous hash and this entry (hex)")


class LedgerResponse(_Body):
    payment_id: str
    entries: list[LedgerEntry]


class PaymentListResponse(_Body):
    data: list[PaymentResponse] = Field(description="newest first")
    has_more: bool


class Balance(_Body):
    account: str
    currency: str
    amount: int = Field(description="debits minus credits of every entry of the account, minor units")


class BalancesResponse(_Body):
    balances: list[Balance]


class CheckpointResponse(_Body):
    merchant: str = Field(description="the merchant whose ledger it commits to")
    sequence: int = Field(description="1 for the ledger's first checkpoint, then one more for each")
    previous: str | None = Field(
        description="SHA-256 (lowercase hex) of the previous checkpoint's JSON, signature included, keys sorted, no "
        "spaces; null for sequence 1"
    )
    root: str = Field(description="Merkle root (RFC 6962, hex) over every chain's sequence and head hash")
    created_at: str
    key_id: str = Field(description="the KMS key that signed it (GET /ledger/public-key)")
    algorithm: Literal["ECDSA_SHA_256"]
    signature: str = Field(
        description="base64 of the DER signature over this JSON without signature, keys sorted, no spaces"
    )


class CheckpointListResponse(_Body):
    data: list[CheckpointResponse] = Field(description="newest first")
    has_more: bool


class PublicKeyResponse(_Body):
    key_id: str
    pem: str = Field(description="the ECC_NIST_P256 public key, SubjectPublicKeyInfo in PEM")


class WebhookEndpointResponse(_Body):
    id: str
    url: str
    events: list[str] = Field(description='event types, or ["*"]')
    secret: str | None = Field(
        default=None, description="whsec_…: in the answer to the endpoint's creation only (not in a replay of it)"
    )
    created_at: str
    deleted: Literal[True] | None = Field(default=None, description="in the answer to its deletion")


class WebhookEndpointListResponse(_Body):
    data: list[WebhookEndpointResponse] = Field(description="oldest first, without their secrets")
    has_more: Literal[False]


class DeliveryAttempt(_Body):
    endpoint_id: str
    attempted_at: str
    status: int | None = Field(description="the receiver's HTTP status (2xx: delivered); null when it gave none")
    error: str | None = Field(description="timeout, connection_failed, tls_failed, address_not_allowed, …")


class DeliveryListResponse(_Body):
    event_id: str
    data: list[DeliveryAttempt] = Field(description="oldest first; never what the receiver answered")


class RedeliveryResponse(_Body):
    id: str
    redelivery: Literal["scheduled"]


class ErrorDetail(_Body):
    type: Literal[
        "invalid_request_error",
        "permission_error",
        "card_error",
        "idempotency_error",
        "api_error",
        "gateway_error",
        "rate_limit_error",
    ]
    code: str
    message: str
    param: str | None = None
    decline_code: str | None = None
    payment_id: str | None = None
    refund_id: str | None = None
    request_id: str


class ErrorResponse(_Body):
    error: ErrorDetail
