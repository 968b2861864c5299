"""POST /tokens."""

from lambdas.bootstrap import service
from lambdas.edge import ApiRequest, api_handler
from lambdas.models import TokenRequest
from lambdas.routes import Function
from lambdas.service import Answer, CardInput, PaymentService


def create_token(request: ApiRequest, service: PaymentService) -> Answer:
    card = request.model(TokenRequest).card
    given = CardInput(card.number, card.exp_month, card.exp_year, card.cvc, card.holder_name)
    return service.tokenize(given, request.optional_idempotency())


handler = api_handler(Function.TOKENIZE, {"POST /tokens": create_token}, service)
