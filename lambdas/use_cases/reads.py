"""GET /payments/{id}, GET /payments/{id}/ledger and GET /balances."""

from lambdas.domain.chains import total_balances
from lambdas.domain.errors import NotFound
from lambdas.domain.payments import Payment
from lambdas.ports import Answer, UoW
from lambdas.presenters import balances_body, ledger_body, payment_body
from lambdas.use_cases import Dependencies


def find_payment(deps: Dependencies[UoW], payment_id: str, with_metadata: bool = True) -> Payment:
    """The payment, or a 404 that never repeats the id (a path id may be anything, a card number too)."""
    payment = deps.store.get_payment(payment_id, with_metadata) if payment_id.startswith("pay_") else None
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
