"""Route implementations: request model -> service command -> answer."""

from lambdas.edge import ApiRequest
from lambdas.models import PaymentRequest, RefundRequest, TokenRequest
from lambdas.service import Answer, CardInput, PaymentCommand, PaymentService


def create_token(request: ApiRequest, service: PaymentService) -> Answer:
    body = request.model(TokenRequest)
    card = CardInput(body.card.number, body.card.exp_month, body.card.exp_year, body.card.cvc, body.card.holder_name)
    return service.tokenize(card, request.request_id, request.idempotency(required=False))


def create_payment(request: ApiRequest, service: PaymentService) -> Answer:
    idempotency = request.idempotency(required=True)
    body = request.model(PaymentRequest)
    source = body.source
    card = None
    if source.card:
        card = CardInput(source.card.number, source.card.exp_month, source.card.exp_year, source.card.cvc)
    command = PaymentCommand(body.amount, body.currency, source.token, card, body.description, body.metadata)
    return service.create_payment(command, request.request_id, idempotency)


def get_payment(request: ApiRequest, service: PaymentService) -> Answer:
    return service.get_payment(request.path_parameters.get("id", ""))


def create_refund(request: ApiRequest, service: PaymentService) -> Answer:
    idempotency = request.idempotency(required=True)
    body = request.model(RefundRequest)
    return service.refund(request.path_parameters.get("id", ""), body.amount, request.request_id, idempotency)


def get_ledger(request: ApiRequest, service: PaymentService) -> Answer:
    return service.ledger(request.path_parameters.get("id", ""))
