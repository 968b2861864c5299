"""POST /payments/{id}/refunds."""

from lambdas.bootstrap import tenancy
from lambdas.edge import ApiHandler, ApiRequest
from lambdas.request_bodies import RefundRequest
from lambdas.routes import Function
from lambdas.service import Answer, PaymentService


def create_refund(request: ApiRequest, service: PaymentService) -> Answer:
    key = request.idempotency()
    amount = request.model(RefundRequest).amount
    return service.refund(request.path_parameters.get("id", ""), amount, key, request.request_id)


handler = ApiHandler(Function.REFUND, {"POST /payments/{id}/refunds": create_refund}, tenancy)
