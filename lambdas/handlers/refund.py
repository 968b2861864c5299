"""POST /payments/{id}/refunds."""

from lambdas.bootstrap import service
from lambdas.edge import ApiRequest, api_handler
from lambdas.models import RefundRequest
from lambdas.routes import Function
from lambdas.service import Answer, PaymentService


def create_refund(request: ApiRequest, service: PaymentService) -> Answer:
    key = request.idempotency()
    amount = request.model(RefundRequest).amount
    return service.refund(request.path_parameters.get("id", ""), amount, key)


handler = api_handler(Function.REFUND, {"POST /payments/{id}/refunds": create_refund}, service)
