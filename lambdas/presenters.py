"""Domain objects rendered as the contract's JSON bodies (shared/docs/api-contract.md)."""

from datetime import datetime
from typing import Any

from lambdas.domain.cards import MaskedCard, mask_card_numbers
from lambdas.domain.payments import Entry, Payment, Refund
from lambdas.domain.timestamps import iso


def error_body(error_type: str, code: str, message: str, request_id: str, **optional: str | None) -> dict[str, Any]:
    """The contract's error object; ``optional`` takes param, decline_code, payment_id, refund_id.

    The last line of defence: a card number in the message or param (the parts that can carry what a client sent,
    whatever raised the error) is masked; the ids are the service's or API Gateway's own."""
    error = {"type": error_type, "code": code, "message": mask_card_numbers(message)}
    error.update({k: v for k, v in optional.items() if v is not None})
    if "param" in error:
        error["param"] = mask_card_numbers(error["param"])
    error["request_id"] = request_id
    return {"error": error}


def token_body(token_id: str, card: MaskedCard, created_at: datetime) -> dict[str, Any]:
    return {
        "token": token_id,
        "card": {
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "fingerprint": card.fingerprint,
        },
        "created_at": iso(created_at),
    }


def payment_body(payment: Payment) -> dict[str, Any]:
    body = {
        "id": payment.id,
        "status": payment.display_status.value,
        "amount": payment.amount,
        "currency": payment.currency,
        "amount_refunded": payment.amount_refunded,
        "card": {"brand": payment.card.brand, "last4": payment.card.last4, "fingerprint": payment.card.fingerprint},
        "gateway": {"name": "sparkle", "charge_id": payment.charge_id},
        "metadata": payment.metadata,
        "created_at": iso(payment.created_at),
    }
    if payment.description is not None:
        body["description"] = payment.description
    if payment.decline_code:
        body["decline_code"] = payment.decline_code
    return body


def refund_body(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "payment_id": refund.payment_id,
        "amount": refund.amount,
        "status": refund.status.value,
        "created_at": iso(refund.created_at),
    }


def ledger_body(payment_id: str, entries: list[Entry]) -> dict[str, Any]:
    return {
        "payment_id": payment_id,
        "entries": [
            {
                "id": e.id,
                "account": e.account,
                "direction": e.direction.value,
                "amount": e.amount,
                "currency": e.currency,
                "created_at": iso(e.created_at),
                "chain": e.chain,
                "sequence": e.sequence,
                "hash": e.hash,
            }
            for e in entries
        ],
    }


def balances_body(balances: dict[tuple[str, str], int]) -> dict[str, Any]:
    return {
        "balances": [
            {"account": account, "currency": currency, "amount": amount}
            for (account, currency), amount in sorted(balances.items())
        ]
    }
