"""`python -m tools.moto_atomic HOST PORT`: moto's server, one request at a time.

moto's backends are not thread-safe (a DynamoDB transaction deep-copies a table
that another request thread may be writing), while each DynamoDB request is
atomic in AWS. Connections stay threaded; handling a request holds a lock, so
concurrent clients interleave between requests, never inside one.

One answer is made to read as AWS's: API Gateway returns a REST API's resource
policy JSON-escaped (``{\\"Version\\":...}``), which Terraform's provider unescapes;
moto returns it raw, and the provider then fails to read its own policy."""

import json
import sys
import threading
from typing import Any

from moto.apigateway.models import RestAPI
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class AtomicRequests:
    def __init__(self, app) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


def _policy_escaped_as_aws_returns_it() -> None:
    unescaped = RestAPI.to_dict

    def to_dict(self: RestAPI) -> dict[str, Any]:
        answer = unescaped(self)
        if answer.get(RestAPI.PROP_POLICY):
            answer[RestAPI.PROP_POLICY] = json.dumps(answer[RestAPI.PROP_POLICY])[1:-1]
        return answer

    RestAPI.to_dict = to_dict


def main() -> None:
    _policy_escaped_as_aws_returns_it()
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(
        host,
        port,
        AtomicRequests(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
