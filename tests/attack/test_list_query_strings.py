"""Attack: GET /payments query strings. `limit` is checked with ``str.isdigit()``, which is true for characters
``int()`` refuses (superscripts, circled digits), so ``?limit=²`` raises an unhandled ValueError from the use case
(the READ handler answers it as a 500 internal error) instead of the contract's 400 naming `limit`
(api-contract.md: "`limit` 1–100"). Fixed by checking ``limit`` against ASCII digits (or int() in a try)."""

import pytest

from lambdas.domain.errors import InvalidRequest
from tests.fakes import fake_world
from tests.fakes_gateway import FakeGateway


@pytest.mark.parametrize("limit", ["²", "①", "1²"])
def test_a_limit_int_refuses_is_a_400_naming_limit(limit):
    world = fake_world(FakeGateway())
    with pytest.raises(InvalidRequest) as refused:
        world.service.list_payments(limit, None)
    assert refused.value.param == "limit"
