"""API Gateway REST proxy events, as API Gateway sends them, and response readers."""

import json
import re
import uuid

from lambdas.routes import ROUTES
from tests.leaks import card_data_in


def api_event(method: str, path: str, body=None, headers=None, raw_body: str | None = None, caller="arn:aws:iam::123456789012:user/tester"):
    """The event for ``method path`` (a concrete path such as /payments/pay_1/refunds)."""
    for route in ROUTES:
        pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route.path) + "$"
        match = re.match(pattern, path)
        if match and route.method == method:
            resource, parameters = route.path, match.groupdict() or None
            break
    else:
        resource, parameters = path, None
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": None,
        "pathParameters": parameters,
        "stageVariables": None,
        "requestContext": {"requestId": str(uuid.uuid4()), "stage": "v1", "httpMethod": method, "resourcePath": resource,
                           "identity": {"userArn": caller, "sourceIp": "127.0.0.1"}},  # fmt: skip
        "body": raw_body,
        "isBase64Encoded": False,
    }


def body_of(response: dict) -> dict:
    return json.loads(response["body"])


def invoke(method: str, path: str, body=None, **kwargs) -> dict:
    """Run the real handler that serves ``method path``, as Lambda would."""
    import importlib

    event = api_event(method, path, body, **kwargs)
    route = next((r for r in ROUTES if r.method == method and r.path == event["resource"]), None)
    function = route.function if route else ROUTES[0].function
    module, name = function.handler.rsplit(".", 1)
    response = getattr(importlib.import_module(module), name)(event, None)
    assert card_data_in(response["body"]) == [], "card data in a response body"
    return response
