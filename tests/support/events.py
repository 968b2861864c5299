"""Handler invocations for tests: every response body is checked for card data."""

import json

from tests.support.leaks import card_data_in
from tools import api_events


def invoke(method: str, path: str, body=None, **kwargs) -> dict:
    response = api_events.invoke(api_events.api_event(method, path, body, **kwargs))
    assert card_data_in(response["body"]) == [], "card data in a response body"
    return response


def body_of(response: dict) -> dict:
    return json.loads(response["body"])
