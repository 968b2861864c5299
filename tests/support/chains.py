"""Hash chains of ledger entries built in memory, and a fake world's chains grown or cut back."""

import itertools
from datetime import UTC, datetime

from lambdas.domain.chains import Head, chain_of
from lambdas.domain.payments import Direction, Entry
from tests.support.payments import pay

NOW = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=UTC)


def payment_entries(payment_id: str, amount: int, currency: str = "USD") -> list[Entry]:
    """A captured payment's two entries: the gateway owes the amount, the merchant is owed it."""
    return [
        Entry(f"le_{payment_id}_d", payment_id, "gateway_receivable:sparkle", Direction.DEBIT, amount, currency, NOW),
        Entry(f"le_{payment_id}_c", payment_id, "merchant_balance", Direction.CREDIT, amount, currency, NOW),
    ]


# Payment ids whose entries belong in chain 0 (a payment's chain is its id's: chain_of).
PAY = [p for p in (f"pay_{i}" for i in range(10_000)) if chain_of(p) == 0][:6]


def build_chain(n: int) -> tuple[list[Entry], Head]:
    """Chain 0 of merchant acme holding the entries of payments PAY[0] to PAY[n - 1], and its head."""
    placed_entries, head = [], Head(0)
    for i in range(n):
        placed, head = head.extend("acme", payment_entries(PAY[i], 100 + i))
        placed_entries += placed
    return placed_entries, head


def pay_on_chain(world, chain: int) -> None:
    """Honest payments until one lands on ``chain``."""
    for n in itertools.count():
        if chain_of(pay(world, key=f"on-chain-{chain}-{n}").body["id"]) == chain:
            return


def truncate_chain(world, payment_id: str) -> int:
    """The payment's chain wound back to nothing, its entries deleted, as only someone with table access could."""
    chain = chain_of(payment_id)
    del world.ledger.entries[payment_id]
    world.ledger.heads[chain] = Head(chain)
    return chain
