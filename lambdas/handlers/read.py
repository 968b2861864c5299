"""Entry point of the read function: the payment logic lands with issue 3."""

from lambdas.http import error_response, request_id_of


def handler(event: dict, context: object) -> dict:
    return error_response(501, "api_error", "not_implemented", "This route is not served yet.", request_id_of(event))
