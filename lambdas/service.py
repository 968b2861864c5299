"""The payment service: one object per container holding the dependencies, with
one method per use case (the use cases live in ``lambdas.use_cases``)."""

from datetime import timedelta
from typing import Any

from lambdas.ports import Answer
from lambdas.use_cases import Dependencies, payments, reads, reconcile, refunds, tokens
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.tokens import CardInput

__all__ = ["Answer", "CardInput", "PaymentCommand", "PaymentService"]


class PaymentService:
    def __init__(self, deps: Dependencies[Any]) -> None:  # any family of adapters: DynamoDB, or the fakes
        self.deps = deps

    def tokenize(self, card: CardInput, key: str | None) -> Answer:
        return tokens.tokenize(self.deps, card, key)

    def create_payment(self, command: PaymentCommand, request_id: str, key: str) -> Answer:
        return payments.create_payment(self.deps, command, request_id, key)

    def refund(self, payment_id: str, amount: int | None, key: str) -> Answer:
        return refunds.refund(self.deps, payment_id, amount, key)

    def get_payment(self, payment_id: str) -> Answer:
        return reads.get_payment(self.deps, payment_id)

    def ledger(self, payment_id: str) -> Answer:
        return reads.ledger(self.deps, payment_id)

    def reconcile(
        self, settle_after: timedelta = reconcile.SETTLE_AFTER, give_up_after: timedelta = reconcile.GIVE_UP_AFTER
    ) -> dict[str, int]:
        return reconcile.reconcile(self.deps, settle_after, give_up_after)
