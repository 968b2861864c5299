"""POST /payments/{id}/capture and POST /payments/{id}/cancel."""

from lambdas.bootstrap import tenancy
from lambdas.edge import ApiHandler, ApiRequest
from lambdas.request_bodies import CancelRequest, CaptureRequest
from lambdas.routes import Function
from lambdas.service import Answer, PaymentService


def capture_payment(request: ApiRequest, service: PaymentService) -> Answer:
    key = request.idempotency()
    amount = request.model(CaptureRequest).amount
    return service.capture(request.path_parameters.get("id", ""), amount, key)


def cancel_payment(request: ApiRequest, service: PaymentService) -> Answer:
    key = request.idempotency()
    request.model(CancelRequest)
    return service.cancel(request.path_parameters.get("id", ""), key)


handler = ApiHandler(
    Function.CAPTURE,
    {"POST /payments/{id}/capture": capture_payment, "POST /payments/{id}/cancel": cancel_payment},
    tenancy,
)
