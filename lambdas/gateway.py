"""The card gateway as the service sees it: a charge, a refund, a lookup, and
what can go wrong. ``lambdas.adapters.sparkle`` implements it over HTTP."""

from dataclasses import dataclass
from typing import Protocol

from lambdas.domain.cards import Card


@dataclass(frozen=True)
class Charge:
    id: str
    status: str  # "succeeded" | "declined"
    decline_code: str | None
    amount: int
    currency: str
    reference: str


class GatewayUnavailable(Exception):
    """The gateway answered with a failure: nothing is known to be charged."""


class GatewayOutcomeUnknown(Exception):
    """The request may have reached the gateway, but no answer came back."""


class GatewayRejected(Exception):
    """The gateway refused the request (4xx): retrying the same request cannot help."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


class Gateway(Protocol):
    def charge(self, reference: str, amount: int, currency: str, card: Card, idempotency_key: str) -> Charge: ...

    def find_charge(self, reference: str) -> Charge | None: ...

    def refund(self, charge_id: str, amount: int, idempotency_key: str) -> str: ...
