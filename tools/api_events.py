"""API Gateway REST proxy events, shaped as API Gateway sends them, and the
dispatch of an event to the real handler that serves its route. Used by the
tests, the benchmarks and the local runtime."""

import importlib
import json
import re
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qsl

from lambdas.routes import ROUTES, Function, Route


def route_for(method: str, path: str) -> tuple[Route | None, dict[str, str] | None]:
    """The route serving ``method path`` (a concrete path) and its path parameters."""
    for route in ROUTES:
        pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route.path) + "$"
        match = re.match(pattern, path)
        if match and route.method == method:
            return route, match.groupdict() or None
    return None, None


def _account_of(principal: str) -> str:
    """The account of an IAM or STS ARN, as API Gateway reports the caller's."""
    parts = principal.split(":")
    return parts[4] if len(parts) > 5 else ""


def api_event(
    method: str,
    path: str,
    body=None,
    headers=None,
    raw_body: str | None = None,
    caller: str = "arn:aws:iam::123456789012:user/local",
    content_type: str | None = "application/json",
    request_id: str | None = None,
    api_key_id: str | None = None,
) -> dict:
    """The event for ``method path`` (a query string after ``?``, as API Gateway passes it); ``content_type`` is
    added unless the headers name one; ``api_key_id``: the id of the API key the request carried, as API Gateway
    reports it (None: no key)."""
    path, _, query_string = path.partition("?")
    query = dict(parse_qsl(query_string, keep_blank_values=True))
    route, parameters = route_for(method, path)
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    all_headers = {**({"Content-Type": content_type} if content_type else {}), **(headers or {})}
    resource = route.path if route else path
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": query or None,
        "pathParameters": parameters,
        "stageVariables": None,
        "requestContext": {
            "requestId": request_id or str(uuid.uuid4()),
            "stage": "v1",
            "httpMethod": method,
            "resourcePath": resource,
            "identity": {
                "userArn": caller,
                "accountId": _account_of(caller),
                "sourceIp": "127.0.0.1",
                "apiKeyId": api_key_id,
            },
        },
        "body": raw_body,
        "isBase64Encoded": False,
    }


class LambdaContext:
    """What the handlers read of Lambda's context: the time left before the function's timeout,
    counted from the invocation's start as Lambda counts it."""

    def __init__(self, timeout_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.ends = clock() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.ends - self.clock()) * 1000))


def handler_for(route: Route):
    return function_handler(route.function)


def function_handler(function: Function):
    module, name = function.handler.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def invoke(event: dict) -> dict:
    """Run the handler for the event's route, as Lambda would."""
    route, _ = route_for(event["httpMethod"], event["path"])
    return handler_for(route or ROUTES[0])(event, None)
