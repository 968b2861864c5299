"""`python -m tools.moto_atomic HOST PORT`: moto's server, one request at a time.

moto's backends are not thread-safe (a DynamoDB transaction deep-copies a table
that another request thread may be writing), while each DynamoDB request is
atomic in AWS. Connections stay threaded; handling a request holds a lock, so
concurrent clients interleave between requests, never inside one.

Lambda's GetAccountSettings, which moto lacks, answers from its functions: the account's concurrency limit
(MOTO_LAMBDA_CONCURRENCY_QUOTA, moto's own setting, else AWS's default of 1,000) less what they reserve.

One answer is made to read as AWS's: API Gateway returns a REST API's resource
policy JSON-escaped (``{\\"Version\\":...}``), which Terraform's provider unescapes;
moto returns it raw, and the provider then fails to read its own policy."""

import json
import os
import re
import sys
import threading
from typing import Any

from moto.apigateway.models import RestAPI
from moto.awslambda.models import lambda_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class AtomicRequests:
    def __init__(self, app) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


DEFAULT_CONCURRENCY_QUOTA = 1000  # a Lambda account's concurrent executions unless raised
ACCOUNT_SETTINGS = re.compile(r"^/2016-08-19/account-settings/?$")
LAMBDA_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/lambda/")


class LambdaAccountSettings:
    """GET /2016-08-19/account-settings/ of the Lambda API, from moto's functions in the signed region."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        scope = LAMBDA_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if environ["REQUEST_METHOD"] != "GET" or not scope or not ACCOUNT_SETTINGS.match(environ["PATH_INFO"]):
            return self.app(environ, start_response)
        functions = lambda_backends[DEFAULT_ACCOUNT_ID][scope.group(1)].list_functions()
        limit = int(os.environ.get("MOTO_LAMBDA_CONCURRENCY_QUOTA", DEFAULT_CONCURRENCY_QUOTA))
        reserved = sum(int(function.reserved_concurrency or 0) for function in functions)
        body = {
            "AccountLimit": {"ConcurrentExecutions": limit, "UnreservedConcurrentExecutions": limit - reserved},
            "AccountUsage": {"FunctionCount": len(functions)},
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]


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
        AtomicRequests(LambdaAccountSettings(DomainDispatcherApplication(create_backend_app))),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
