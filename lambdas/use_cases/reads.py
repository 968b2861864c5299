"""GET /payments/{id}, GET /payments/{id}/ledger, GET /payments (list) and GET /balances."""

from lambdas.domain.chains import total_balances
from lambdas.domain.errors import InvalidRequest, NotFound
from lambdas.domain.ids import is_id
from lambdas.domain.payments import Entry, Payment
from lambdas.ports import UoW
from lambdas.use_cases import Dependencies


def find_payment(
    deps: Dependencies[UoW], payment_id: str, with_metadata: bool = True, to_book: bool = False
) -> Payment:
    """The payment, or a 404 that never repeats the id (a path id may be anything, a card number too); ``to_book``:
    entries are booked for it next (``PaymentRecords.get_payment``)."""
    payment = deps.store.get_payment(payment_id, with_metadata, to_book) if is_id("pay", payment_id) else None
    if payment is None:
        raise NotFound("No such payment.")
    return payment


def ledger(deps: Dependencies[UoW], payment_id: str) -> tuple[Payment, list[Entry]]:
    """The payment (without its metadata) and its entries."""
    payment = find_payment(deps, payment_id, with_metadata=False)
    return payment, deps.store.entries(payment.id)


def balances(deps: Dependencies[UoW]) -> dict[tuple[str, str], int]:
    """Each (account, currency)'s balance: the sum of the chains' heads, each of which changes in the transaction
    that adds its entries."""
    return total_balances(deps.store.heads())


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


def list_payments(deps: Dependencies[UoW], limit: str | None, starting_after: str | None) -> tuple[list[Payment], bool]:
    """A page of the merchant's payments, newest first; ``starting_after`` is the previous page's last id."""
    size = page_size(limit)
    cursor = None
    if starting_after is not None:
        try:
            cursor = find_payment(deps, starting_after, with_metadata=False)
        except NotFound:  # an unknown id and another merchant's alike; the id is not repeated
            raise InvalidRequest("starting_after must be the id of one of your payments.", "starting_after") from None
    return deps.store.list_payments(size, cursor)
