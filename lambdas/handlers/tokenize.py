"""POST /tokens."""

from lambdas.bootstrap import tenancy
from lambdas.edge import ApiHandler, ApiRequest
from lambdas.request_bodies import TokenRequest
from lambdas.routes import Function
from lambdas.service import Answer, PaymentService
from lambdas.use_cases.tokens import CardInput


def create_token(request: ApiRequest, service: PaymentService) -> Answer:
    card = request.model(TokenRequest).card
    given = CardInput(card.number, card.exp_month, card.exp_year, card.cvc, card.holder_name)
    return service.tokenize(given, request.optional_idempotency())


handler = ApiHandler(Function.TOKENIZE, {"POST /tokens": create_token}, tenancy)
