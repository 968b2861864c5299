"""POST /payments/{id}/refunds."""

from lambdas import api
from lambdas.bootstrap import service
from lambdas.edge import api_handler
from lambdas.routes import Function

handler = api_handler(Function.REFUND, {"POST /payments/{id}/refunds": api.create_refund}, service)
