"""The ledger proves itself: each merchant's entries form ``CHAINS`` hash chains, and checkpoints commit to them.

A payment's entries all go to one chain (``chain_of`` its id), so writers of different payments rarely meet: no
lock and no single item on every write. Each entry carries its chain, its ``sequence`` there (1, 2, ...) and
``hash = SHA-256(previous hash + "\\n" + canonical entry)``, the first entry's previous hash being ``GENESIS``.
One head per chain holds its sequence, its hash and its running balances, written in the same transaction as
the entries; a writer that finds the head moved starts again from the new one.

A checkpoint commits to every chain at once: ``root`` is the Merkle root (RFC 6962: leaf ``SHA-256(0x00 +
leaf)``, node ``SHA-256(0x01 + left + right)``, an odd node promoted) over the heads, ordered by chain, each leaf
the canonical JSON of ``{"chain", "sequence", "hash"}``. Canonical JSON: keys sorted, no spaces, UTF-8."""

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lambdas.domain.payments import Direction, Entry, movement_of
from lambdas.domain.timestamps import iso

# Per merchant. Each head takes one write per payment or refund; DynamoDB gives an item 1,000 WCU/s and a
# transactional write of a head (under 1 KB) costs 2 WCU, so a head holds about 500 writes/s, and 2 chains would
# carry the 1,000 payments/s goal. The number is set by how seldom concurrent writers should meet on a head (a
# writer that finds its head moved places its entries again): measured with 8 writers on one merchant (make
# bench-ledger), 8 chains cost 0.45 retries per payment, 32 cost 0.11, 64 stay under the 0.1 goal; 64 heads
# carry ~32,000 writes/s on paper.
CHAINS = 64
GENESIS = "0" * 64
MISSING_AT_THE_END = "entries missing at the end"  # a chain shorter than its head (deleted, or not yet indexed)


def canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_of(payment_id: str) -> int:
    """The chain that holds every entry of a payment."""
    return int.from_bytes(hashlib.sha256(payment_id.encode()).digest()[:4], "big") % CHAINS


def entry_document(merchant: str, entry: Entry) -> dict[str, Any]:
    """What an entry's hash covers: every field it is stored and shown with (``settlement_id`` only on a
    settlement's entries, so that every other entry's hash stays as it was)."""
    settlement = {"settlement_id": entry.settlement_id} if entry.settlement_id is not None else {}
    return settlement | {
        "merchant": merchant,
        "chain": entry.chain,
        "sequence": entry.sequence,
        "id": entry.id,
        "payment_id": entry.payment_id,
        "refund_id": entry.refund_id,
        "account": entry.account,
        "direction": entry.direction.value,
        "amount": entry.amount,
        "currency": entry.currency,
        "created_at": iso(entry.created_at),
    }


def link(previous: str, merchant: str, entry: Entry) -> str:
    return hashlib.sha256(previous.encode() + b"\n" + canonical(entry_document(merchant, entry))).hexdigest()


def linked_hash(merchant: str, entries: Mapping[int | None, Entry], sequence: int) -> str | None:
    """The hash that the entry at ``sequence`` proves, from ``entries`` by sequence (it and the one before it): its
    content linked to the stored hash before it (``GENESIS`` for the first). None when either is missing."""
    entry, before = entries.get(sequence), entries.get(sequence - 1)
    previous = GENESIS if sequence == 1 else (before.hash if before else None)
    if entry is None or previous is None:
        return None
    return link(previous, merchant, entry)


def signed_amount(entry: Entry) -> int:
    """The entry's effect on its account's balance: debits minus credits."""
    return entry.amount if entry.direction is Direction.DEBIT else -entry.amount


@dataclass(frozen=True)
class Head:
    """A chain's last entry and the balances of every entry in it, by (account, currency)."""

    chain: int
    sequence: int = 0
    hash: str = GENESIS
    balances: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def extend(self, merchant: str, entries: Sequence[Entry]) -> tuple[list[Entry], "Head"]:
        """``entries`` placed at the end of this chain, and the head after them."""
        sequence, previous, balances = self.sequence, self.hash, dict(self.balances)
        placed = []
        for entry in entries:
            sequence += 1
            positioned = replace(entry, chain=self.chain, sequence=sequence, hash=None)
            previous = link(previous, merchant, positioned)
            placed.append(replace(positioned, hash=previous))
            key = (entry.account, entry.currency)
            balances[key] = balances.get(key, 0) + signed_amount(entry)
        return placed, Head(self.chain, sequence, previous, balances)


def fold_balances(entries: Iterable[Entry]) -> dict[tuple[str, str], int]:
    """Debits minus credits per (account, currency): what the heads' balances must equal."""
    balances: dict[tuple[str, str], int] = {}
    for entry in entries:
        key = (entry.account, entry.currency)
        balances[key] = balances.get(key, 0) + signed_amount(entry)
    return balances


def total_balances(heads: Iterable[Head]) -> dict[tuple[str, str], int]:
    balances: dict[tuple[str, str], int] = {}
    for head in heads:
        for key, amount in head.balances.items():
            balances[key] = balances.get(key, 0) + amount
    return balances


def positions(heads: Iterable[Head]) -> list[dict[str, Any]]:
    """Where every chain stands (``CHAINS`` of them, in order; a chain never written is at ``GENESIS``): the Merkle
    tree's leaves."""
    by_chain = {head.chain: head for head in heads}
    return [
        {"chain": c, "sequence": h.sequence, "hash": h.hash} for c in range(CHAINS) for h in [by_chain.get(c, Head(c))]
    ]


def merkle_root(heads: Iterable[Head]) -> str:
    """The root over the heads of every chain."""
    return root_of(positions(heads))


def root_of(leaves: Sequence[Mapping[str, Any]]) -> str:
    """The Merkle root (RFC 6962) over ``leaves``, each hashed as its canonical JSON."""
    level = [hashlib.sha256(b"\x00" + canonical(leaf)).digest() for leaf in leaves]
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0].hex()


@dataclass(frozen=True)
class Break:
    """The first place a chain stops proving itself."""

    chain: int | None  # None: an entry outside every chain, or a checkpoint
    sequence: int | None
    entry_id: str | None
    reason: str
    checkpoint: int | None = None  # the signed checkpoint that does not hold

    def __str__(self) -> str:
        where = [f"checkpoint {self.checkpoint}"] if self.checkpoint is not None else []
        where += [f"chain {self.chain}"] if self.chain is not None else []
        where += [f"sequence {self.sequence}"] if self.sequence is not None else []
        where += [f"entry {self.entry_id}"] if self.entry_id else []
        return f"{', '.join(where)}: {self.reason}"


def check_chain(merchant: str, chain: int, entries: Sequence[Entry], head: Head | None) -> Break | None:
    """Recompute ``chain`` from its entries (in sequence order) and compare with its head: the first edited entry
    (its hash no longer follows), deleted one (a gap), inserted one (a sequence twice, or past the head), or a head
    whose hash or balances disagree with the entries."""
    broken = _first_broken_link(merchant, chain, entries)
    if broken:
        return broken
    last = entries[-1] if entries else None
    sequence, previous = (last.sequence or 0, last.hash or GENESIS) if last else (0, GENESIS)
    head = head or Head(chain)
    if head.sequence != sequence:
        kind = "an inserted entry past the head" if sequence > head.sequence else MISSING_AT_THE_END
        return Break(
            chain, max(sequence, head.sequence), None, f"{kind}: the head says {head.sequence}, the chain {sequence}"
        )
    if head.hash != previous:
        return Break(chain, sequence, None, "the head's hash is not the last entry's")
    if dict(head.balances) != fold_balances(entries):
        return Break(chain, sequence, None, "the head's balances are not the sum of the chain's entries")
    return None


def _first_broken_link(merchant: str, chain: int, entries: Sequence[Entry]) -> Break | None:
    expected, previous = 1, GENESIS
    for entry in entries:
        if entry.sequence is None or entry.sequence < expected:
            return Break(chain, entry.sequence or 0, entry.id, "an inserted entry: this sequence is taken")
        if entry.chain != chain:
            return Break(chain, entry.sequence, entry.id, f"an entry of chain {entry.chain}, read from chain {chain}")
        if entry.chain != chain_of(entry.payment_id):
            return Break(chain, entry.sequence, entry.id, f"an entry of chain {chain_of(entry.payment_id)} moved here")
        if entry.sequence > expected:
            return Break(
                chain, expected, None, f"a deleted entry: the chain goes from {expected - 1} to {entry.sequence}"
            )
        if link(previous, merchant, replace(entry, hash=None)) != entry.hash:
            return Break(chain, entry.sequence, entry.id, "an edited entry: its hash does not follow from the chain")
        expected, previous = expected + 1, entry.hash
    return None


def books_break(chain: int, entries: Sequence[Entry]) -> Break | None:
    """The first entry of ``chain`` that breaks double entry: an amount that is not a whole number above 0, or a
    movement (``movement_of``) in more than one currency, or whose debits and credits differ. ``entries``: whole
    movements, as a head covers them (a movement's entries are written together, on its payment's chain)."""
    movements: dict[tuple[str, str | None, str | None], list[Entry]] = {}
    for entry in entries:
        if isinstance(entry.amount, bool) or not isinstance(entry.amount, int) or entry.amount <= 0:
            reason = f"an amount of {entry.amount}: every amount is a whole number above 0"
            return Break(chain, entry.sequence, entry.id, reason)
        movements.setdefault(movement_of(entry), []).append(entry)
    for (payment_id, refund_id, settlement_id), booked in movements.items():
        first = booked[0]
        movement = f"refund {refund_id} of payment {payment_id}" if refund_id else f"payment {payment_id}"
        movement = f"settlement {settlement_id} of {movement}" if settlement_id else movement
        currencies = sorted({entry.currency for entry in booked})
        if len(currencies) > 1:
            reason = f"{movement} is booked in {' and '.join(currencies)}: a movement has one currency"
            return Break(chain, first.sequence, first.id, reason)
        debits = sum(entry.amount for entry in booked if entry.direction is Direction.DEBIT)
        credits = sum(entry.amount for entry in booked if entry.direction is Direction.CREDIT)
        if debits != credits:
            return Break(
                chain, first.sequence, first.id, f"{movement} does not balance: debits {debits}, credits {credits}"
            )
    return None
