"""`python -m tools.openapi`: writes docs/openapi.json (OpenAPI 3.1) from the
routes (lambdas/routes.py) and the pydantic models of requests and responses.
tests/test_openapi.py fails when the checked-in file is stale."""

import json
from pathlib import Path

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from lambdas import models, response_models
from lambdas.domain.events import EventType
from lambdas.routes import IDEMPOTENCY_HEADER, MAX_BODY_BYTES, ROUTES
from lambdas.use_cases.reads import DEFAULT_LIST_LIMIT, LIST_LIMITS

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
ALWAYS = {
    403: "Unsigned or badly signed (SigV4), no merchant's API key, a principal that acts for no merchant, or an "
    "unknown route",
    429: "The merchant is over its request rate (Retry-After says when to retry)",
    500: "Unexpected error",
}
BODY_ERRORS = {400: "Invalid request", 413: f"Body over {MAX_BODY_BYTES // 1024} KiB", 415: "Body is not JSON"}
IDEMPOTENCY_ERRORS = {409: "Same key still in flight", 422: "Same key, different body"}
GATEWAY_ERRORS = {502: "Gateway failed; payment left pending", 504: "Gateway timed out; payment left pending"}

# (method, path) -> summary, request model, success status, success model, documented errors
OPERATIONS: dict[tuple[str, str], tuple] = {
    ("POST", "/tokens"): ("Vault a card", models.TokenRequest, 201, response_models.TokenResponse, BODY_ERRORS),
    ("POST", "/payments"): (
        "Charge a card or a token",
        models.PaymentRequest,
        201,
        response_models.PaymentResponse,
        BODY_ERRORS
        | IDEMPOTENCY_ERRORS
        | GATEWAY_ERRORS
        | {402: "Declined by the gateway or a rule, or given up: the gateway never charged it"},
    ),
    ("GET", "/payments/{id}"): (
        "Read a payment",
        None,
        200,
        response_models.PaymentResponse,
        {404: "Unknown payment, or another merchant's"},
    ),
    ("POST", "/payments/{id}/refunds"): (
        "Refund a payment",
        models.RefundRequest,
        201,
        response_models.RefundResponse,
        BODY_ERRORS
        | IDEMPOTENCY_ERRORS
        | GATEWAY_ERRORS
        | {402: "Given up: the gateway never made the refund", 404: "Unknown payment, or another merchant's"},
    ),
    ("POST", "/payments/{id}/capture"): (
        "Capture an authorised payment, in full or in part",
        models.CaptureRequest,
        200,
        response_models.PaymentResponse,
        BODY_ERRORS
        | IDEMPOTENCY_ERRORS
        | GATEWAY_ERRORS
        | {
            400: "Invalid request, payment_not_capturable (not an authorisation, or captured, cancelled or expired),"
            " or amount_too_large",
            404: "Unknown payment, or another merchant's",
        },
    ),
    ("POST", "/payments/{id}/cancel"): (
        "Cancel an authorised payment: its authorisation is released",
        models.CancelRequest,
        200,
        response_models.PaymentResponse,
        BODY_ERRORS
        | IDEMPOTENCY_ERRORS
        | GATEWAY_ERRORS
        | {
            400: "Invalid request, or payment_not_cancelable (not an authorisation, or captured, cancelled or expired)",
            404: "Unknown payment, or another merchant's",
        },
    ),
    ("GET", "/payments/{id}/ledger"): (
        "Read a payment's ledger entries",
        None,
        200,
        response_models.LedgerResponse,
        {404: "Unknown payment, or another merchant's"},
    ),
    ("GET", "/balances"): ("Read the merchant's balances", None, 200, response_models.BalancesResponse, {}),
    ("GET", "/ledger/checkpoints/latest"): (
        "Read the newest signed checkpoint of the merchant's ledger",
        None,
        200,
        response_models.CheckpointResponse,
        {404: "No checkpoint yet"},
    ),
    ("GET", "/ledger/checkpoints"): (
        "List the merchant's signed checkpoints, newest first",
        None,
        200,
        response_models.CheckpointListResponse,
        {400: "limit out of range, or starting_after not the sequence of one of your checkpoints"},
    ),
    ("GET", "/ledger/checkpoints/{sequence}"): (
        "Read one signed checkpoint by its sequence",
        None,
        200,
        response_models.CheckpointResponse,
        {404: "No checkpoint of yours has that sequence"},
    ),
    ("GET", "/ledger/public-key"): (
        "Read the public key that checks the checkpoints",
        None,
        200,
        response_models.PublicKeyResponse,
        {},
    ),
    ("GET", "/payments"): (
        "List the merchant's payments, newest first",
        None,
        200,
        response_models.PaymentListResponse,
        {400: "limit out of range, or starting_after not one of your payments"},
    ),
    ("GET", "/settlements"): (
        "List the merchant's share of each gateway settlement, newest first",
        None,
        200,
        response_models.SettlementListResponse,
        {400: "limit out of range, or starting_after not one of your settlements"},
    ),
    ("GET", "/settlements/{id}"): (
        "Read the merchant's share of a gateway settlement, with its mismatches",
        None,
        200,
        response_models.SettlementDetailResponse,
        {404: "Unknown settlement, one not imported in full yet, or one with none of your lines"},
    ),
    ("GET", "/events"): (
        "List the merchant's events, newest first, of one type when asked",
        None,
        200,
        response_models.EventListResponse,
        {400: "limit out of range, starting_after not one of your events, or type not an event type"},
    ),
    ("GET", "/events/{id}"): (
        "Read an event",
        None,
        200,
        response_models.EventResponse,
        {404: "Unknown event, or another merchant's"},
    ),
    ("GET", "/events/{id}/deliveries"): (
        "List an event's delivery attempts: endpoint, time, and status or error",
        None,
        200,
        response_models.DeliveryListResponse,
        {404: "Unknown event, or another merchant's"},
    ),
    ("POST", "/events/{id}/redeliver"): (
        "Send an event again to every endpoint that subscribes to its type",
        models.RedeliverRequest,
        202,
        response_models.RedeliveryResponse,
        BODY_ERRORS | IDEMPOTENCY_ERRORS | {404: "Unknown event, or another merchant's"},
    ),
    ("POST", "/webhook_endpoints"): (
        "Register a webhook endpoint; its signing secret is in this answer only",
        models.WebhookEndpointRequest,
        201,
        response_models.WebhookEndpointResponse,
        BODY_ERRORS
        | IDEMPOTENCY_ERRORS
        | {400: "Invalid request, url_not_allowed (not https, or not a public address), or endpoint_limit (16)"},
    ),
    ("GET", "/webhook_endpoints"): (
        "List the merchant's webhook endpoints, without their secrets",
        None,
        200,
        response_models.WebhookEndpointListResponse,
        {},
    ),
    ("DELETE", "/webhook_endpoints/{id}"): (
        "Delete a webhook endpoint: no delivery reaches it afterwards",
        None,
        200,
        response_models.WebhookEndpointResponse,
        {404: "Unknown endpoint, or another merchant's"},
    ),
}
LIMIT_PARAMETER = {"name": "limit", "in": "query", "required": False,
                   "schema": {"type": "integer", "minimum": LIST_LIMITS[0], "maximum": LIST_LIMITS[1],
                              "default": DEFAULT_LIST_LIMIT}}  # fmt: skip
QUERY_PARAMETERS = {
    ("GET", "/payments"): [
        LIMIT_PARAMETER,
        {"name": "starting_after", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "the last payment id of the previous page"},
    ],
    ("GET", "/ledger/checkpoints"): [
        LIMIT_PARAMETER,
        {"name": "starting_after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1},
         "description": "the last checkpoint sequence of the previous page"},
    ],
    ("GET", "/settlements"): [
        LIMIT_PARAMETER,
        {"name": "starting_after", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "the last settlement id of the previous page"},
    ],
    ("GET", "/events"): [
        LIMIT_PARAMETER,
        {"name": "starting_after", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "the last event id of the previous page"},
        {"name": "type", "in": "query", "required": False,
         "schema": {"type": "string", "enum": [t.value for t in EventType]}, "description": "only events of this type"},
    ],
}  # fmt: skip


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def build() -> dict:
    if set(OPERATIONS) != {(r.method, r.path) for r in ROUTES}:
        raise ValueError("every route needs exactly one entry in OPERATIONS")
    all_models = {m for op in OPERATIONS.values() for m in (op[1], op[3]) if m} | {response_models.ErrorResponse}
    _, definitions = models_json_schema(
        [(m, "validation") for m in sorted(all_models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict = {}
    for route in ROUTES:
        summary, request, status, response, errors = OPERATIONS[(route.method, route.path)]
        parameters = [
            {"name": p.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
            for p in route.path_parts
            if p.startswith("{")
        ]
        parameters += QUERY_PARAMETERS.get((route.method, route.path), [])
        if route.method == "POST":
            parameters.append(
                {
                    "name": IDEMPOTENCY_HEADER,
                    "in": "header",
                    "required": route.idempotent,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]+$"},
                }
            )
        path_words = "_".join(p.strip("{}") for p in route.path_parts)
        operation: dict = {
            "operationId": f"{route.function.value}_{route.method.lower()}_{path_words}",
            "summary": summary,
            "parameters": parameters,
            "responses": {str(status): {"description": "Success", "content": _json(_ref(response))}}
            | {
                str(code): {"description": text, "content": _json(_ref(response_models.ErrorResponse))}
                for code, text in sorted((errors | ALWAYS).items())
            },
        }
        if request:
            operation["requestBody"] = {
                "required": route.path != "/payments/{id}/refunds",
                "content": _json(_ref(request)),
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Payment ledger API",
            "version": "1",
            "description": "The contract of docs/api.md. Every route requires AWS Signature Version 4 (service "
            "execute-api), deployed (stage v1, AWS_IAM) and local (http://127.0.0.1:3000, with the keys `make local` "
            "writes to .local/credentials), signing the Idempotency-Key too, and the merchant's API key in "
            "x-api-key. Each signer acts for one merchant and sees only that merchant's objects.",
        },
        "servers": [{"url": "http://127.0.0.1:3000", "description": "make local"}],
        "paths": paths,
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "AWS Signature Version 4 (service execute-api): required on every route",
                },
                "merchantApiKey": {
                    "type": "apiKey",
                    "name": "x-api-key",
                    "in": "header",
                    "description": "The merchant's API key (its usage plan, its own rate): required on every route",
                },
            },
        },
        "security": [{"sigv4": [], "merchantApiKey": []}],
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
