"""Typed results of the payment API (the contract's objects)."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CardSummary:
    """What the API shows of a card: never its number."""

    brand: str
    last4: str
    fingerprint: str
    exp_month: int | None = None  # on tokens
    exp_year: int | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> "CardSummary":
        return cls(body["brand"], body["last4"], body["fingerprint"], body.get("exp_month"), body.get("exp_year"))


@dataclass(frozen=True)
class Token:
    token: str
    card: CardSummary
    created_at: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Token":
        return cls(body["token"], CardSummary.of(body["card"]), body["created_at"])


@dataclass(frozen=True)
class Payment:
    id: str
    amount: int
    currency: str
    status: str
    amount_refunded: int
    card: CardSummary
    created_at: str
    metadata: dict[str, str]
    description: str | None = None
    charge_id: str | None = None
    decline_code: str | None = None
    amount_captured: int = 0
    amount_capturable: int = 0  # authorised and not yet captured, released or expired
    capture_before: str | None = None  # an authorisation's expiry (RFC 3339), on authorisations only
    cancellation_reason: str | None = None  # "requested_by_customer" or "expired", on canceled payments only
    replayed: bool = False  # the API answered a retry of an earlier request with its first answer

    @classmethod
    def of(cls, body: dict[str, Any], replayed: bool = False) -> "Payment":
        return cls(
            id=body["id"],
            amount=body["amount"],
            currency=body["currency"],
            status=body["status"],
            amount_refunded=body.get("amount_refunded", 0),
            card=CardSummary.of(body["card"]),
            created_at=body["created_at"],
            metadata=body.get("metadata") or {},
            description=body.get("description"),
            charge_id=(body.get("gateway") or {}).get("charge_id"),
            decline_code=body.get("decline_code"),
            amount_captured=body.get("amount_captured", 0),
            amount_capturable=body.get("amount_capturable", 0),
            capture_before=body.get("capture_before"),
            cancellation_reason=body.get("cancellation_reason"),
            replayed=replayed,
        )


@dataclass(frozen=True)
class Refund:
    id: str
    payment_id: str
    amount: int
    status: str
    created_at: str
    replayed: bool = False

    @classmethod
    def of(cls, body: dict[str, Any], replayed: bool = False) -> "Refund":
        return cls(body["id"], body["payment_id"], body["amount"], body["status"], body["created_at"], replayed)


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    account: str
    direction: str
    amount: int
    currency: str
    created_at: str
    sequence: int | None = None  # its place in its hash chain
    hash: str | None = None
    chain: int | None = None  # the hash chain that holds it: its payment's (docs/api.md, GET /payments/{id}/ledger)

    @classmethod
    def of(cls, body: dict[str, Any]) -> "LedgerEntry":
        return cls(
            body["id"],
            body["account"],
            body["direction"],
            body["amount"],
            body["currency"],
            body["created_at"],
            body.get("sequence"),
            body.get("hash"),
            body.get("chain"),
        )


@dataclass(frozen=True)
class Balance:
    account: str
    currency: str
    amount: int  # debits minus credits, minor units


@dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint of the merchant's ledger; ``signed`` is the body exactly as served, which the signature
    covers (without ``signature``, keys sorted, no spaces): check it with the public key (docs/api.md, "The ledger
    proves itself")."""

    sequence: int
    root: str
    created_at: str
    key_id: str
    signature: str
    signed: dict[str, Any]
    merchant: str | None = None  # whose ledger it commits to
    previous: str | None = None  # SHA-256 (hex) of the checkpoint before it, signature included; None for the first

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Checkpoint":
        return cls(body["sequence"], body["root"], body["created_at"], body["key_id"], body["signature"], body,
                   body.get("merchant"), body.get("previous"))  # fmt: skip


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    pem: str


@dataclass(frozen=True)
class SettlementMismatch:
    """Where a settlement and the merchant's ledger disagree, with what each side says: ``reason`` is
    ``amount_differs``, ``currency_differs`` or ``not_settled`` (a succeeded payment or refund no settlement listed
    within 3 days: no ``gateway_line``, no ``gateway_amount``)."""

    reference: str  # the payment's (pay_…) or refund's (re_…) id
    gateway_line: str | None
    reason: str
    ledger_amount: int | None
    gateway_amount: int | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> "SettlementMismatch":
        return cls(body["reference"], body.get("gateway_line"), body["reason"], body.get("ledger_amount"),
                   body.get("gateway_amount"))  # fmt: skip


@dataclass(frozen=True)
class Settlement:
    """The merchant's share of one gateway settlement: ``net`` = ``gross`` - ``fees`` over its ``lines`` lines;
    ``status`` ``reconciled`` or ``mismatched``. ``mismatches`` is None in a listing (``settlements``, which shows
    only the status) and the full list when read alone (``get_settlement``) or in a ``settlement.*`` event."""

    id: str
    currency: str
    gross: int
    fees: int
    net: int
    lines: int
    status: str
    created_at: str
    mismatches: tuple[SettlementMismatch, ...] | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Settlement":
        mismatches = body.get("mismatches")
        return cls(
            body["id"],
            body["currency"],
            body["gross"],
            body["fees"],
            body["net"],
            body["lines"],
            body["status"],
            body["created_at"],
            None if mismatches is None else tuple(SettlementMismatch.of(m) for m in mismatches),
        )


@dataclass(frozen=True)
class SettlementPage:
    """One page of ``list_settlements``: newest first; ``has_more`` when another page follows (ask for it with
    ``starting_after`` = this page's last id)."""

    data: tuple[Settlement, ...]
    has_more: bool


# an event type's prefix -> its object's model
EVENT_OBJECTS: dict[str, Any] = {"payment": Payment, "refund": Refund, "settlement": Settlement}


@dataclass(frozen=True)
class Event:
    """A change of state the service tells the merchant of (``GET /events``, a webhook delivery). ``object`` is
    ``data.object``: a ``Payment`` for ``payment.*`` events, a ``Refund`` for ``refund.*`` events, a ``Settlement``
    (with its mismatches) for ``settlement.*`` events, else the JSON object as sent (types this SDK does not know
    yet)."""

    id: str
    type: str
    created_at: str
    object: Payment | Refund | Settlement | dict[str, Any]
    data: dict[str, Any]  # the event's ``data`` as sent, ``object`` included

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Event":
        data = body["data"]
        sent = data["object"]
        model = EVENT_OBJECTS.get(body["type"].partition(".")[0])
        return cls(body["id"], body["type"], body["created_at"], model.of(sent) if model else dict(sent), data)

    @property
    def object_id(self) -> str | None:
        """The id of the payment, refund, settlement or other object the event is about."""
        if isinstance(self.object, dict):
            identifier = self.object.get("id")
            return identifier if isinstance(identifier, str) else None
        return self.object.id


@dataclass(frozen=True)
class WebhookEndpoint:
    """A URL that receives the merchant's events of ``events`` (``("*",)``: all). ``secret`` (``whsec_…``, for
    ``verify_webhook``) is only in the answer that created it, and never in ``repr``."""

    id: str
    url: str
    events: tuple[str, ...]
    created_at: str
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, body: dict[str, Any]) -> "WebhookEndpoint":
        return cls(body["id"], body["url"], tuple(body["events"]), body["created_at"], body.get("secret"))


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver an event to one endpoint: the HTTP status it got, or the error (``timeout``, a refused
    or dropped connection, ...) when there was none. The receiver's body is never kept."""

    endpoint_id: str
    attempted_at: str
    status: int | None
    error: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Delivery":
        return cls(body["endpoint_id"], body["attempted_at"], body.get("status"), body.get("error"))
