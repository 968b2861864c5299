"""GET /payments/{id}, GET /payments/{id}/ledger, GET /payments (list) and GET /balances."""

from lambdas.domain.chains import total_balances
from lambdas.domain.errors import InvalidRequest, NotFound
from lambdas.domain.ids import is_id
from lambdas.domain.payments import Payment
from lambdas.ports import Answer, UoW
from lambdas.presenters import balances_body, ledger_body, payment_body
from lambdas.use_cases import Dependencies


def find_payment(deps: Dependencies[UoW], payment_id: str, with_metadata: bool = True) -> Payment:
    """The payment, or a 404 that never repeats the id (a path id may be anything, a card number too)."""
    payment = deps.store.get_payment(payment_id, with_metadata) if is_id("pay", payment_id) else None
    if payment is None:
        raise NotFound("No such payment.")
    return payment


def get_payment(deps: Dependencies[UoW], payment_id: str) -> Answer:
    return Answer(200, payment_body(find_payment(deps, payment_id)))


def ledger(deps: Dependencies[UoW], payment_id: str) -> Answer:
    payment = find_payment(deps, payment_id, with_metadata=False)
    return Answer(200, ledger_body(payment.id, deps.store.entries(payment.id)))


def balances(deps: Dependencies[UoW]) -> Answer:
    """The sum of the chains' heads: each head changes in the transaction that adds its entries."""
    return Answer(200, balances_body(total_balances(deps.store.heads())))


LIST_LIMITS = (1, 100)
DEFAULT_LIST_LIMIT = 10


def page_size(limit: str | None) -> int:
    """A listing's ``limit`` query parameter as the number of items a page holds."""
    low, high = LIST_LIMITS
    if limit is None:
        return DEFAULT_LIST_LIMIT
    if limit.isascii() and limit.isdigit() and low <= int(limit) <= high:  # not ² or ①, which int() refuses
        return int(limit)
    raise InvalidRequest(f"limit must be a whole number from {low} to {high}.", "limit")


def list_payments(deps: Dependencies[UoW], limit: str | None, starting_after: str | None) -> Answer:
    """A page of the merchant's payments, newest first; ``starting_after`` is the previous page's last id."""
    size = page_size(limit)
    cursor = None
    if starting_after is not None:
        try:
            cursor = find_payment(deps, starting_after, with_metadata=False)
        except NotFound:  # an unknown id and another merchant's alike; the id is not repeated
            raise InvalidRequest("starting_after must be the id of one of your payments.", "starting_after") from None
    payments, has_more = deps.store.list_payments(size, cursor)
    return Answer(200, {"data": [payment_body(payment) for payment in payments], "has_more": has_more})
