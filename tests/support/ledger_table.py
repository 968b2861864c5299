"""Ledger entries written into a DynamoDB ledger table through the store, as the service writes them."""

from datetime import UTC, datetime

from lambdas.adapters.ledger.chains import ChainAppend
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.domain.payments import Direction, Entry

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def record(store: DynamoLedgerStore, payment_id: str, amount: int) -> int:
    """A captured payment's two entries, written as the service writes them; the head moves it met."""
    entries = [
        Entry(f"le_{payment_id}_d", payment_id, "gateway_receivable:sparkle", Direction.DEBIT, amount, "USD", NOW),
        Entry(f"le_{payment_id}_c", payment_id, "merchant_balance", Direction.CREDIT, amount, "USD", NOW),
    ]
    uow = store.unit_of_work()
    uow.append(ChainAppend(store.chains, entries))
    uow.commit()
    return uow.moved_heads
