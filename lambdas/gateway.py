"""The card gateway as the service sees it: a charge (or an authorisation, then its capture or void), a refund,
lookups by reference, and what can go wrong. ``lambdas.adapters.sparkle`` implements it
over HTTP; ``tests.support.fakes_gateway.FakeGateway`` in memory, held to the same behaviour by
``tests/test_gateway_contract.py``."""

from dataclasses import dataclass
from typing import Protocol

from lambdas.domain.cards import Card
from lambdas.domain.settlements import Settlement, SettlementLine

# A charge's status: "authorized" until it is captured ("succeeded"), voided or expired; a charge made with
# capture is "succeeded" (or "declined") at once.
CHARGE_STATUSES = ("succeeded", "declined", "authorized", "voided", "expired")
REFUND_STATUSES = ("succeeded",)


@dataclass(frozen=True)
class Charge:
    id: str
    status: str  # one of CHARGE_STATUSES (any other status is a GatewayInvalidAnswer)
    decline_code: str | None
    amount: int  # authorised (or charged)
    currency: str
    reference: str
    amount_captured: int = 0  # a succeeded charge's captured amount (all of it, when charged with capture)
    amount_capturable: int = 0  # an authorised charge's amount, until captured, voided or expired
    expires: int | None = None  # an authorisation's expiry, unix seconds on the gateway's clock


@dataclass(frozen=True)
class GatewayRefund:
    id: str
    charge_id: str
    amount: int
    status: str  # "succeeded"
    reference: str


class GatewayError(Exception):
    """Anything but a usable answer: the service answers 502/504 and leaves the object pending."""


class GatewayUnavailable(GatewayError):
    """The gateway answered with a failure (5xx, 401/403/404/429, a redirect), could not be reached, or no time was
    left to try: nothing is known to have happened."""


class GatewayOutcomeUnknown(GatewayError):
    """The request may have reached the gateway, but no answer came back in time (or the key is still in flight,
    409, or was first used with another body, 422): settle it by looking it up by reference, never by sending it
    again with another key."""


class GatewayInvalidAnswer(GatewayError):
    """The gateway answered, but not with something that can be booked: bad JSON, missing fields, an unknown
    status, or an amount, currency or reference that differs from the request. What happened is unknown."""


class GatewayRejected(GatewayError):
    """The gateway refused the request itself (400): sending the same request again cannot help."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def amount_refused(self) -> bool:
        """The refused field was the amount (more than is left to refund)."""
        return self.code == "amount_too_large"


class Gateway(Protocol):
    def charge(
        self, reference: str, amount: int, currency: str, card: Card, idempotency_key: str, capture: bool = True
    ) -> Charge:
        """Charge the card, or with ``capture=False`` only authorise it ("authorized")."""

    def capture(self, charge_id: str, amount: int, reference: str, idempotency_key: str) -> Charge:
        """Capture ``amount`` of an authorised charge (the rest is released): "succeeded". ``GatewayRejected`` when
        the charge is not authorised (any more) or ``amount`` is more than it holds."""

    def void(self, charge_id: str, reference: str, idempotency_key: str) -> Charge:
        """Release an authorised charge: "voided". ``GatewayRejected`` when it is not authorised (any more)."""

    def find_charge(self, reference: str) -> Charge | None: ...

    def refund(self, charge_id: str, amount: int, reference: str, idempotency_key: str) -> GatewayRefund: ...

    def find_refund(self, reference: str) -> GatewayRefund | None: ...

    def settlements(self, created_after: int) -> list[Settlement]:
        """The settlements created after ``created_after`` (unix seconds), oldest first."""

    def settlement_lines(
        self, settlement_id: str, starting_after: str | None = None, limit: int = 100
    ) -> tuple[list[SettlementLine], bool]:
        """Up to ``limit`` of a settlement's lines after the line ``starting_after``, and whether more follow."""
