"""GET /payments (list), GET /payments/{id}, GET /payments/{id}/ledger, GET /balances, the ledger's checkpoints and
public key, GET /settlements (list) and GET /settlements/{id}, and GET /events (list) and GET /events/{id}: no
request body, so no models to load."""

from lambdas.bootstrap import tenancy
from lambdas.edge import ApiHandler, ApiRequest
from lambdas.routes import Function
from lambdas.service import Answer, PaymentService


def get_payment(request: ApiRequest, service: PaymentService) -> Answer:
    return service.get_payment(request.path_parameters.get("id", ""))


def get_ledger(request: ApiRequest, service: PaymentService) -> Answer:
    return service.ledger(request.path_parameters.get("id", ""))


def list_payments(request: ApiRequest, service: PaymentService) -> Answer:
    return service.list_payments(request.query.get("limit"), request.query.get("starting_after"))


def get_event(request: ApiRequest, service: PaymentService) -> Answer:
    return service.get_event(request.path_parameters.get("id", ""))


def list_events(request: ApiRequest, service: PaymentService) -> Answer:
    query = request.query
    return service.list_events(query.get("limit"), query.get("starting_after"), query.get("type"))


def get_settlement(request: ApiRequest, service: PaymentService) -> Answer:
    return service.get_settlement(request.path_parameters.get("id", ""))


def list_settlements(request: ApiRequest, service: PaymentService) -> Answer:
    return service.list_settlements(request.query.get("limit"), request.query.get("starting_after"))


def list_deliveries(request: ApiRequest, service: PaymentService) -> Answer:
    return service.deliveries(request.path_parameters.get("id", ""))


def get_balances(request: ApiRequest, service: PaymentService) -> Answer:
    return service.balances()


def latest_checkpoint(request: ApiRequest, service: PaymentService) -> Answer:
    return service.latest_checkpoint()


def list_checkpoints(request: ApiRequest, service: PaymentService) -> Answer:
    return service.list_checkpoints(request.query.get("limit"), request.query.get("starting_after"))


def get_checkpoint(request: ApiRequest, service: PaymentService) -> Answer:
    return service.checkpoint(request.path_parameters.get("sequence", ""))


def public_key(request: ApiRequest, service: PaymentService) -> Answer:
    return service.public_key()


handler = ApiHandler(
    Function.READ,
    {
        "GET /payments": list_payments,
        "GET /payments/{id}": get_payment,
        "GET /payments/{id}/ledger": get_ledger,
        "GET /balances": get_balances,
        "GET /ledger/checkpoints": list_checkpoints,
        "GET /ledger/checkpoints/latest": latest_checkpoint,
        "GET /ledger/checkpoints/{sequence}": get_checkpoint,
        "GET /ledger/public-key": public_key,
        "GET /settlements": list_settlements,
        "GET /settlements/{id}": get_settlement,
        "GET /events": list_events,
        "GET /events/{id}": get_event,
        "GET /events/{id}/deliveries": list_deliveries,
    },
    tenancy,
)
