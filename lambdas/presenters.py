"""The use cases' results rendered as the contract's answers: status and JSON body
(shared/docs/api-contract.md)."""

from __future__ import annotations  # the results' types are the use cases': a function loads only its own

from typing import TYPE_CHECKING, Any

from lambdas.domain.cards import mask_card_numbers
from lambdas.domain.payments import Entry, Payment, Refund, RefundStatus, Status
from lambdas.domain.timestamps import iso
from lambdas.ports import Answer

if TYPE_CHECKING:
    from datetime import datetime

    from lambdas.domain.cards import MaskedCard
    from lambdas.domain.checkpoints import Checkpoint
    from lambdas.domain.events import Event
    from lambdas.domain.settlements import Share
    from lambdas.domain.webhooks import Attempt, Endpoint
    from lambdas.ports import Signer
    from lambdas.use_cases.payments import PaymentOutcome
    from lambdas.use_cases.tokens import Token
    from lambdas.use_cases.webhooks import CreatedEndpoint


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
        "amount_captured": payment.amount_captured,
        "amount_capturable": payment.amount_capturable,
        "card": {"brand": payment.card.brand, "last4": payment.card.last4, "fingerprint": payment.card.fingerprint},
        "gateway": {"name": "sparkle", "charge_id": payment.charge_id},
        "metadata": payment.metadata,
        "created_at": iso(payment.created_at),
    }
    if payment.description is not None:
        body["description"] = payment.description
    if payment.decline_code:
        body["decline_code"] = payment.decline_code
    if payment.capture_before is not None:
        body["capture_before"] = iso(payment.capture_before)
    if payment.cancellation_reason is not None:
        body["cancellation_reason"] = payment.cancellation_reason.value
    return body


def refund_body(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "payment_id": refund.payment_id,
        "amount": refund.amount,
        "status": refund.status.value,
        "created_at": iso(refund.created_at),
    }


def settlement_body(share: Share, with_mismatches: bool = True) -> dict[str, Any]:
    """The merchant's share of a settlement; ``with_mismatches``: as GET /settlements/{id} shows it (a listing shows
    only the status)."""
    body: dict[str, Any] = {
        "id": share.settlement_id,
        "currency": share.currency,
        "gross": share.gross,
        "fees": share.fees,
        "net": share.net,
        "lines": share.lines,
        "status": share.status.value,
        "created_at": iso(share.created_at),
    }
    if with_mismatches:
        body["mismatches"] = [
            {
                "reference": m.reference,
                "gateway_line": m.gateway_line,
                "reason": m.reason.value,
                "ledger_amount": m.ledger_amount,
                "gateway_amount": m.gateway_amount,
            }
            for m in share.mismatches
        ]
    return body


def settlement_list_body(shares: list[Share], has_more: bool) -> dict[str, Any]:
    return {"data": [settlement_body(share, with_mismatches=False) for share in shares], "has_more": has_more}


def event_body(event: Event) -> dict[str, Any]:
    """An event: its object is the refund (a refund event's), the settlement (a settlement event's, as
    GET /settlements/{id} shows it) or the payment, as GET showed it right after the change."""
    changed: dict[str, Any]
    if event.settlement is not None:
        changed = settlement_body(event.settlement)
    elif event.refund is not None:
        changed = refund_body(event.refund)
    elif event.payment is not None:
        changed = payment_body(event.payment)
    else:
        raise ValueError(f"event {event.id} tells of nothing")
    return {"id": event.id, "type": event.type.value, "created_at": iso(event.created_at), "data": {"object": changed}}


def event_list_body(events: list[Event], has_more: bool) -> dict[str, Any]:
    return {"data": [event_body(event) for event in events], "has_more": has_more}


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


def token_answer(token: Token) -> Answer:
    return Answer(201, token_body(token.id, token.card, token.created_at))


def payment_answer(outcome: PaymentOutcome, request_id: str) -> Answer:
    """A payment request's answer: ``201`` for a succeeded payment, ``402`` for a declined or given-up one."""
    payment = outcome.payment
    if outcome.blocked_by is not None:
        return declined_answer(payment, request_id, f"The payment was blocked by rule '{outcome.blocked_by}'.")
    if payment.status is Status.DECLINED:
        return declined_answer(payment, request_id, "The card was declined.")
    if payment.status is Status.FAILED:
        return given_up_answer(request_id, payment.id)
    return Answer(201, payment_body(payment))


def changed_payment_answer(payment: Payment) -> Answer:
    """A capture's or cancel's answer: the payment as it ended."""
    return Answer(200, payment_body(payment))


def refund_answer(refund: Refund, request_id: str) -> Answer:
    """A refund request's answer: ``201`` for a succeeded refund, ``402`` for a given-up one."""
    if refund.status is RefundStatus.FAILED:
        return given_up_answer(request_id, refund.payment_id, refund.id)
    return Answer(201, refund_body(refund))


def declined_answer(payment: Payment, request_id: str, message: str) -> Answer:
    body = error_body(
        "card_error", "card_declined", message, request_id, decline_code=payment.decline_code, payment_id=payment.id
    )
    return Answer(402, body)


def given_up_answer(request_id: str, payment_id: str, refund_id: str | None = None) -> Answer:
    """The answer for a payment (or refund) that reconciliation gave up since the gateway never made it: final, so
    kept for replays, and a ``402`` (the request was valid and failed, as a decline does), unlike the ``502`` of a
    gateway that may still answer. A new key starts a new one."""
    what, code = ("refund", "refund_failed") if refund_id else ("payment", "payment_failed")
    message = f"The gateway never made this {what}, so it failed for good; to try again, use a new Idempotency-Key."
    body = error_body("gateway_error", code, message, request_id, payment_id=payment_id, refund_id=refund_id)
    return Answer(402, body)


def payment_list_body(payments: list[Payment], has_more: bool) -> dict[str, Any]:
    return {"data": [payment_body(payment) for payment in payments], "has_more": has_more}


def checkpoint_list_body(checkpoints: list[Checkpoint], has_more: bool) -> dict[str, Any]:
    return {"data": [checkpoint.body for checkpoint in checkpoints], "has_more": has_more}


def public_key_body(signer: Signer) -> dict[str, Any]:
    return {"key_id": signer.key_id, "pem": signer.public_key_pem()}


def read_answer(body: dict[str, Any]) -> Answer:
    """A read's answer: the body of what was found."""
    return Answer(200, body)


def endpoint_body(endpoint: Endpoint) -> dict[str, Any]:
    """A webhook endpoint, never its secret."""
    body = {"id": endpoint.id, "url": endpoint.url, "events": list(endpoint.events)}
    return body | {"created_at": iso(endpoint.created_at)} | ({"deleted": True} if endpoint.deleted else {})


def created_endpoint_answer(created: CreatedEndpoint) -> Answer:
    """``201``: the endpoint, with its secret when it is the first answer (not in the one kept for replays)."""
    secret = {"secret": created.secret} if created.secret is not None else {}
    return Answer(201, endpoint_body(created.endpoint) | secret)


def endpoint_list_body(endpoints: list[Endpoint]) -> dict[str, Any]:
    return {"data": [endpoint_body(endpoint) for endpoint in endpoints], "has_more": False}


def redelivery_answer(event_id: str) -> Answer:
    return Answer(202, {"id": event_id, "redelivery": "scheduled"})


def delivery_list_body(event_id: str, attempts: list[Attempt]) -> dict[str, Any]:
    """An event's delivery attempts: each endpoint, time, and status or error; never what the receiver answered."""
    return {
        "event_id": event_id,
        "data": [
            {"endpoint_id": a.endpoint_id, "attempted_at": iso(a.at), "status": a.status, "error": a.error}
            for a in attempts
        ],
    }
