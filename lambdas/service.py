"""The payment service: one merchant's API, with one method per route, each of which runs its use case
(``lambdas.use_cases``, which return results) and answers the result as the edge sends it (``lambdas.presenters``);
and the tenancy, which gives each caller the service of the merchant it acts for."""

# Each method imports its own use case: a function loads only those of the routes it serves.
# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from lambdas import presenters
from lambdas.domain.merchants import Caller, Merchant
from lambdas.gateway import Gateway
from lambdas.ports import Answer, DeadLetters, MerchantDirectory, SettlementImports, WebhookSender
from lambdas.use_cases import Dependencies, utc_now
from lambdas.use_cases.idempotency import Keyed, Replay, Result

if TYPE_CHECKING:
    from lambdas.use_cases.deliveries import DeliverySettings
    from lambdas.use_cases.payments import PaymentCommand
    from lambdas.use_cases.tokens import CardInput

__all__ = ["Answer", "PaymentService", "Tenancy"]


def _answered(result: Result | Replay, answer: Callable[[Result], Answer]) -> Answer:
    """The answer to send: a replay's as it was first sent, else ``answer`` for the result (which is also what the
    use case stored for replays)."""
    return result.answer if isinstance(result, Replay) else answer(result)


def _reconcile(
    merchants: list[Dependencies[Any]], settle_after: timedelta | None, give_up_after: timedelta | None
) -> dict[str, int]:
    from lambdas.use_cases import reconcile

    settle_after = reconcile.SETTLE_AFTER if settle_after is None else settle_after
    give_up_after = reconcile.GIVE_UP_AFTER if give_up_after is None else give_up_after
    return reconcile.reconcile(merchants, settle_after, give_up_after)


class PaymentService:
    def __init__(self, deps: Dependencies[Any]) -> None:  # any family of adapters: DynamoDB, or the fakes
        self.deps = deps

    def tokenize(self, card: CardInput, key: str | None) -> Answer:
        from lambdas.use_cases import tokens

        call = None if key is None else Keyed(key, presenters.token_answer)
        return _answered(tokens.tokenize(self.deps, card, call), presenters.token_answer)

    def create_payment(self, command: PaymentCommand, request_id: str, key: str) -> Answer:
        from lambdas.use_cases import payments

        call = Keyed(key, partial(presenters.payment_answer, request_id=request_id))
        return _answered(payments.create_payment(self.deps, command, call), call.answer)

    def refund(self, payment_id: str, amount: int | None, key: str, request_id: str = "") -> Answer:
        """``request_id`` is named by an error answer."""
        from lambdas.use_cases import refunds

        call = Keyed(key, partial(presenters.refund_answer, request_id=request_id))
        return _answered(refunds.refund(self.deps, payment_id, amount, call), call.answer)

    def capture(self, payment_id: str, amount: int | None, key: str) -> Answer:
        from lambdas.use_cases import captures

        call = Keyed(key, presenters.changed_payment_answer)
        return _answered(captures.capture(self.deps, payment_id, amount, call), call.answer)

    def cancel(self, payment_id: str, key: str) -> Answer:
        from lambdas.use_cases import captures

        call = Keyed(key, presenters.changed_payment_answer)
        return _answered(captures.cancel(self.deps, payment_id, call), call.answer)

    def get_payment(self, payment_id: str) -> Answer:
        from lambdas.use_cases import reads

        return presenters.read_answer(presenters.payment_body(reads.find_payment(self.deps, payment_id)))

    def ledger(self, payment_id: str) -> Answer:
        from lambdas.use_cases import reads

        payment, entries = reads.ledger(self.deps, payment_id)
        return presenters.read_answer(presenters.ledger_body(payment.id, entries))

    def list_payments(self, limit: str | None, starting_after: str | None) -> Answer:
        from lambdas.use_cases import reads

        page = reads.list_payments(self.deps, limit, starting_after)
        return presenters.read_answer(presenters.payment_list_body(*page))

    def get_event(self, event_id: str) -> Answer:
        from lambdas.use_cases import events

        return presenters.read_answer(presenters.event_body(events.find_event(self.deps, event_id)))

    def list_events(self, limit: str | None, starting_after: str | None, event_type: str | None) -> Answer:
        from lambdas.use_cases import events

        page = events.list_events(self.deps, limit, starting_after, event_type)
        return presenters.read_answer(presenters.event_list_body(*page))

    def get_settlement(self, settlement_id: str) -> Answer:
        from lambdas.use_cases import settlement_reads

        share = settlement_reads.find_share(self.deps, settlement_id)
        return presenters.read_answer(presenters.settlement_body(share))

    def list_settlements(self, limit: str | None, starting_after: str | None) -> Answer:
        from lambdas.use_cases import settlement_reads

        page = settlement_reads.list_shares(self.deps, limit, starting_after)
        return presenters.read_answer(presenters.settlement_list_body(*page))

    def create_endpoint(self, url: str, events: list[str], key: str) -> Answer:
        from lambdas.use_cases import webhooks

        call = Keyed(key, presenters.created_endpoint_answer)
        return _answered(webhooks.create_endpoint(self.deps, url, events, call), call.answer)

    def list_endpoints(self) -> Answer:
        from lambdas.use_cases import webhooks

        return presenters.read_answer(presenters.endpoint_list_body(webhooks.list_endpoints(self.deps)))

    def delete_endpoint(self, endpoint_id: str) -> Answer:
        from lambdas.use_cases import webhooks

        return presenters.read_answer(presenters.endpoint_body(webhooks.delete_endpoint(self.deps, endpoint_id)))

    def redeliver(self, event_id: str, key: str) -> Answer:
        from lambdas.use_cases import webhooks

        call = Keyed(key, presenters.redelivery_answer)
        return _answered(webhooks.redeliver(self.deps, event_id, call), call.answer)

    def deliveries(self, event_id: str) -> Answer:
        from lambdas.use_cases import webhooks

        attempts = webhooks.deliveries(self.deps, event_id)
        return presenters.read_answer(presenters.delivery_list_body(event_id, attempts))

    def balances(self) -> Answer:
        from lambdas.use_cases import reads

        return presenters.read_answer(presenters.balances_body(reads.balances(self.deps)))

    def latest_checkpoint(self) -> Answer:
        from lambdas.use_cases import checkpoints

        return presenters.read_answer(checkpoints.latest_checkpoint(self.deps).body)

    def list_checkpoints(self, limit: str | None, starting_after: str | None) -> Answer:
        from lambdas.use_cases import checkpoints

        page = checkpoints.list_checkpoints(self.deps, limit, starting_after)
        return presenters.read_answer(presenters.checkpoint_list_body(*page))

    def checkpoint(self, sequence: str) -> Answer:
        from lambdas.use_cases import checkpoints

        return presenters.read_answer(checkpoints.get_checkpoint(self.deps, sequence).body)

    def public_key(self) -> Answer:
        return presenters.read_answer(presenters.public_key_body(self.deps.signer))

    def reconcile(
        self, settle_after: timedelta | None = None, give_up_after: timedelta | None = None
    ) -> dict[str, int]:
        """None: ``lambdas.use_cases.reconcile``'s own waits."""
        return _reconcile([self.deps], settle_after, give_up_after)


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
        self, settle_after: timedelta | None = None, give_up_after: timedelta | None = None
    ) -> dict[str, int]:
        """Every merchant's pending payments and refunds, in turns (``lambdas.use_cases.reconcile``; None: its own
        waits)."""
        merchants = [self.dependencies(merchant) for merchant in self.directory.merchants()]
        return _reconcile(merchants, settle_after, give_up_after)

    def deliver(self, sender: WebhookSender, dead_letters: DeadLetters, settings: DeliverySettings) -> dict[str, float]:
        """Every merchant's due events to its webhook endpoints (``lambdas.use_cases.deliveries``)."""
        from lambdas.use_cases.deliveries import deliver

        merchants = [self.dependencies(merchant) for merchant in self.directory.merchants()]
        return deliver(merchants, sender, dead_letters, presenters.event_body, settings)

    def settle(self, gateway: Gateway, imports: SettlementImports) -> dict[str, int]:
        """The gateway's new settlements, matched against every merchant's ledger
        (``lambdas.use_cases.settlements``)."""
        from lambdas.use_cases import settlements

        merchants = [self.dependencies(merchant) for merchant in self.directory.merchants()]
        return settlements.import_settlements(gateway, imports, merchants, utc_now)

    def write_checkpoints(self) -> dict[str, int]:
        """A signed checkpoint of every merchant's ledger that moved (``lambdas.use_cases.checkpoints``)."""
        from lambdas.use_cases import checkpoints

        return checkpoints.write_checkpoints([self.dependencies(merchant) for merchant in self.directory.merchants()])
