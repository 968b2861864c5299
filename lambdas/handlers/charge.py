"""POST /payments."""

from lambdas import api
from lambdas.bootstrap import service
from lambdas.edge import api_handler
from lambdas.routes import Function

handler = api_handler(Function.CHARGE, {"POST /payments": api.create_payment}, service)
