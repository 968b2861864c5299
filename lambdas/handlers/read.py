"""GET /payments/{id} and GET /payments/{id}/ledger."""

from lambdas import api
from lambdas.bootstrap import service
from lambdas.edge import api_handler
from lambdas.routes import Function

handler = api_handler(
    Function.READ, {"GET /payments/{id}": api.get_payment, "GET /payments/{id}/ledger": api.get_ledger}, service
)
