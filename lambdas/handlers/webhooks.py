"""POST, GET and DELETE /webhook_endpoints, and POST /events/{id}/redeliver."""

from lambdas.bootstrap import tenancy
from lambdas.edge import ApiHandler, ApiRequest
from lambdas.request_bodies import RedeliverRequest, WebhookEndpointRequest
from lambdas.routes import Function
from lambdas.service import Answer, PaymentService


def create_endpoint(request: ApiRequest, service: PaymentService) -> Answer:
    key = request.idempotency()
    body = request.model(WebhookEndpointRequest)
    return service.create_endpoint(body.url, body.events, key)


def list_endpoints(request: ApiRequest, service: PaymentService) -> Answer:
    return service.list_endpoints()


def delete_endpoint(request: ApiRequest, service: PaymentService) -> Answer:
    return service.delete_endpoint(request.path_parameters.get("id", ""))


def redeliver(request: ApiRequest, service: PaymentService) -> Answer:
    key = request.idempotency()
    request.model(RedeliverRequest)
    return service.redeliver(request.path_parameters.get("id", ""), key)


handler = ApiHandler(
    Function.WEBHOOKS,
    {
        "POST /webhook_endpoints": create_endpoint,
        "GET /webhook_endpoints": list_endpoints,
        "DELETE /webhook_endpoints/{id}": delete_endpoint,
        "POST /events/{id}/redeliver": redeliver,
    },
    tenancy,
)
