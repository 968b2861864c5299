"""The ledger table (``lambdas.ports.LedgerStore``): one merchant's records, each family kept by its own store in
``lambdas.adapters.ledger``. They share one ``DynamoUnitOfWork``, so what one request writes across families (a
payment, its entries and its chain's head) is still one transaction."""

from typing import Any

from lambdas.adapters.dynamo import DynamoUnitOfWork
from lambdas.adapters.envelope import EnvelopeCipher
from lambdas.adapters.ledger.chains import DynamoChainRecords
from lambdas.adapters.ledger.checkpoints import DynamoCheckpointRecords
from lambdas.adapters.ledger.events import DynamoEventRecords
from lambdas.adapters.ledger.listing import DynamoPaymentListing
from lambdas.adapters.ledger.payments import DynamoPaymentRecords
from lambdas.adapters.ledger.settlements import DynamoSettlementRecords
from lambdas.adapters.ledger.table import LedgerTable
from lambdas.adapters.ledger.tokens import DynamoTokenRecords
from lambdas.adapters.ledger.webhooks import DynamoWebhookRecords


class DynamoLedgerStore:
    """One merchant's records: every key its family stores read or write names ``merchant``."""

    def __init__(
        self,
        client: Any,
        table: str,
        metadata_cipher: EnvelopeCipher,
        merchant: str,
        page_size: int | None = None,
        secret_cipher: EnvelopeCipher | None = None,  # webhook secrets (None: a function that holds none)
    ) -> None:
        self.client = client
        self.table = table
        self.merchant = merchant
        records = LedgerTable(client, table, merchant, page_size)
        self.chains = DynamoChainRecords(records)
        self.tokens = DynamoTokenRecords(records, self.chains)
        self.payments = DynamoPaymentRecords(records, metadata_cipher, self.chains)
        self.checkpoint_log = DynamoCheckpointRecords(records)
        self.listing = DynamoPaymentListing(records, self.payments.get_payment)
        self.events = DynamoEventRecords(records, self.payments)
        self.webhooks = DynamoWebhookRecords(records, secret_cipher)
        self.settlements = DynamoSettlementRecords(records, self.chains)

        # lambdas.ports.LedgerStore, each method its family's
        self.get_token = self.tokens.get_token
        self.add_token = self.tokens.add_token
        self.get_payment = self.payments.get_payment
        self.get_refund = self.payments.get_refund
        self.pending = self.payments.pending
        self.add_payment = self.payments.add_payment
        self.settle_payment = self.payments.settle_payment
        self.claim_action = self.payments.claim_action
        self.settle_action = self.payments.settle_action
        self.release_action = self.payments.release_action
        self.authorizations = self.payments.authorizations
        self.reserve_refund = self.payments.reserve_refund
        self.complete_refund = self.payments.complete_refund
        self.cancel_refund = self.payments.cancel_refund
        self.entries = self.chains.entries
        self.heads = self.chains.heads
        self.hash_at = self.chains.hash_at
        self.latest_checkpoint = self.checkpoint_log.latest_checkpoint
        self.checkpoints = self.checkpoint_log.checkpoints
        self.checkpoint = self.checkpoint_log.checkpoint
        self.list_checkpoints = self.checkpoint_log.list_checkpoints
        self.add_checkpoint = self.checkpoint_log.add_checkpoint
        self.list_payments = self.listing.list_payments
        self.add_event = self.events.add_event
        self.get_event = self.events.get_event
        self.list_events = self.events.list_events
        self._bind_webhook_records()
        self._bind_settlement_records()

    def _bind_webhook_records(self) -> None:
        """``lambdas.ports.WebhookRecords``, each method the webhooks family's."""
        self.add_endpoint = self.webhooks.add_endpoint
        self.delete_endpoint = self.webhooks.delete_endpoint
        self.get_endpoint = self.webhooks.get_endpoint
        self.endpoints = self.webhooks.endpoints
        self.endpoint_secret = self.webhooks.endpoint_secret
        self.due_events = self.webhooks.due_events
        self.lease = self.webhooks.lease
        self.add_attempt = self.webhooks.add_attempt
        self.end_round = self.webhooks.end_round
        self.attempts = self.webhooks.attempts
        self.make_due = self.webhooks.make_due

    def _bind_settlement_records(self) -> None:
        """``lambdas.ports.SettlementRecords``, each method the settlements family's."""
        self.chain_entries = self.settlements.chain_entries
        self.settlement_cursor = self.settlements.settlement_cursor
        self.move_settlement_cursor = self.settlements.move_settlement_cursor
        self.add_expected = self.settlements.add_expected
        self.expected = self.settlements.expected
        self.add_share_line = self.settlements.add_share_line
        self.add_not_settled = self.settlements.add_not_settled
        self.complete_share = self.settlements.complete_share
        self.get_share = self.settlements.get_share
        self.list_shares = self.settlements.list_shares

    def unit_of_work(self) -> DynamoUnitOfWork:
        return DynamoUnitOfWork(self.client)
