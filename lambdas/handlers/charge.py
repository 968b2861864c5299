"""POST /payments."""

from lambdas.bootstrap import tenancy
from lambdas.edge import ApiHandler, ApiRequest
from lambdas.request_bodies import PaymentRequest
from lambdas.routes import Function
from lambdas.service import Answer, PaymentService
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.tokens import CardInput


def create_payment(request: ApiRequest, service: PaymentService) -> Answer:
    key = request.idempotency()
    body = request.model(PaymentRequest)
    card = body.source.card
    given = CardInput(card.number, card.exp_month, card.exp_year, card.cvc) if card else None
    command = PaymentCommand(
        body.amount, body.currency, body.source.token, given, body.description, body.metadata, body.capture
    )
    return service.create_payment(command, request.request_id, key)


handler = ApiHandler(Function.CHARGE, {"POST /payments": create_payment}, tenancy)
