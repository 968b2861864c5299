"""API Gateway REST proxy responses in the contract's shape."""

import json
from typing import Any


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
    }


def error_response(status: int, error_type: str, code: str, message: str, request_id: str, **extra: str) -> dict:
    error = {"type": error_type, "code": code, "message": message, **extra, "request_id": request_id}
    return json_response(status, {"error": error})


def request_id_of(event: dict) -> str:
    return (event.get("requestContext") or {}).get("requestId", "")
