"""POST /tokens."""

from lambdas import api
from lambdas.bootstrap import service
from lambdas.edge import api_handler
from lambdas.routes import Function

handler = api_handler(Function.TOKENIZE, {"POST /tokens": api.create_token}, service)
