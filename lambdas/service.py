"""The payment service: one merchant's dependencies, with one method per use case (the use cases live in
``lambdas.use_cases``); and the tenancy, which gives each caller the service of the merchant it acts for."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from lambdas.domain.merchants import Caller, Merchant
from lambdas.ports import Answer, MerchantDirectory
from lambdas.use_cases import Dependencies, checkpoints, payments, reads, reconcile, refunds, tokens
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.tokens import CardInput

__all__ = ["Answer", "CardInput", "PaymentCommand", "PaymentService", "Tenancy"]


class PaymentService:
    def __init__(self, deps: Dependencies[Any]) -> None:  # any family of adapters: DynamoDB, or the fakes
        self.deps = deps

    def tokenize(self, card: CardInput, key: str | None) -> Answer:
        return tokens.tokenize(self.deps, card, key)

    def create_payment(self, command: PaymentCommand, request_id: str, key: str) -> Answer:
        return payments.create_payment(self.deps, command, request_id, key)

    def refund(self, payment_id: str, amount: int | None, key: str, request_id: str = "") -> Answer:
        return refunds.refund(self.deps, payment_id, amount, key, request_id)

    def get_payment(self, payment_id: str) -> Answer:
        return reads.get_payment(self.deps, payment_id)

    def ledger(self, payment_id: str) -> Answer:
        return reads.ledger(self.deps, payment_id)

    def list_payments(self, limit: str | None, starting_after: str | None) -> Answer:
        return reads.list_payments(self.deps, limit, starting_after)

    def balances(self) -> Answer:
        return reads.balances(self.deps)

    def latest_checkpoint(self) -> Answer:
        return checkpoints.latest_checkpoint(self.deps)

    def list_checkpoints(self, limit: str | None, starting_after: str | None) -> Answer:
        return checkpoints.list_checkpoints(self.deps, limit, starting_after)

    def checkpoint(self, sequence: str) -> Answer:
        return checkpoints.get_checkpoint(self.deps, sequence)

    def public_key(self) -> Answer:
        return checkpoints.public_key(self.deps)

    def reconcile(
        self, settle_after: timedelta = reconcile.SETTLE_AFTER, give_up_after: timedelta = reconcile.GIVE_UP_AFTER
    ) -> dict[str, int]:
        return reconcile.reconcile([self.deps], settle_after, give_up_after)


class Tenancy:
    """One object per container: the merchants, and a service per merchant whose stores reach only its records."""

    def __init__(self, directory: MerchantDirectory, dependencies: Callable[[Merchant], Dependencies[Any]]) -> None:
        self.directory = directory
        self.dependencies = dependencies

    def service_for(self, caller: Caller) -> tuple[Merchant, PaymentService] | None:
        """The merchant the caller acts for and its service; None when it acts for none."""
        merchant = self.directory.merchant_for(caller)
        if merchant is None:
            return None
        return merchant, PaymentService(self.dependencies(merchant))

    def reconcile(
        self, settle_after: timedelta = reconcile.SETTLE_AFTER, give_up_after: timedelta = reconcile.GIVE_UP_AFTER
    ) -> dict[str, int]:
        """Every merchant's pending payments and refunds, in turns (``lambdas.use_cases.reconcile``)."""
        merchants = [self.dependencies(merchant) for merchant in self.directory.merchants()]
        return reconcile.reconcile(merchants, settle_after, give_up_after)

    def write_checkpoints(self) -> dict[str, int]:
        """A signed checkpoint of every merchant's ledger that moved (``lambdas.use_cases.checkpoints``)."""
        return checkpoints.write_checkpoints([self.dependencies(merchant) for merchant in self.directory.merchants()])
