"""Ledger entries and the heads of their hash chains (``lambdas.domain.chains``).

Entries are only ever put (``attribute_not_exists``), each in its payment's ``LEDGER#`` partition and, through
the by_chain index, in its chain. A chain's head moves with every entry placed after it, on the condition that no
other writer moved it first; entries and head go in the same transaction as the payment or refund they record."""

from typing import Any

from lambdas.adapters.dynamo import MOVED_HEAD, DynamoUnitOfWork, Part, put_new
from lambdas.adapters.ledger.table import PK, SK, LedgerTable, key_item
from lambdas.domain.chains import Head, chain_of, linked_hash
from lambdas.domain.payments import Direction, Entry
from lambdas.domain.timestamps import iso, parse_iso
from lambdas.storage_schema import BY_CHAIN, Partition, from_item, to_item

HEADS = "heads"  # the identifier of a merchant's partition of chain heads (one query reads them all)
HEAD_SK = "HEAD#"


class DynamoChainRecords:
    def __init__(self, table: LedgerTable) -> None:
        self.table = table
        self.heads_read_ahead: dict[int, Head] = {}  # chain -> its head as read with a payment's token (this request)

    def head_key(self, chain: int) -> tuple[str, str]:
        return self.table.key(Partition.CHAIN, HEADS), f"{HEAD_SK}{chain:02d}"

    def read_ahead(self, chain: int, values: dict[str, Any] | None) -> None:
        """Keep ``chain``'s head as read with another item (``values``, None: no head yet) for the entries that
        the request places there next, which then need no read of their own."""
        self.heads_read_ahead[chain] = head_of(values) if values else Head(chain)

    def head(self, chain: int) -> Head:
        values = self.table.get(*self.head_key(chain))
        return head_of(values) if values else Head(chain)

    def heads(self) -> list[Head]:
        """Every chain's head that has entries: one query (the balances are their sum)."""
        return [head_of(values) for values in self.table.partition(self.table.key(Partition.CHAIN, HEADS))]

    def entries(self, payment_id: str) -> list[Entry]:
        return [entry_of(values) for values in self.table.partition(self.table.key(Partition.LEDGER, payment_id))]

    def hash_at(self, chain: int, sequence: int) -> str | None:
        """From the by_chain index, which DynamoDB updates within about a second of a write: an entry that old is
        there, and so is the one before it."""
        answer = self.table.client.query(
            TableName=self.table.name,
            IndexName=BY_CHAIN.name,
            KeyConditionExpression="#chain = :chain AND #seq BETWEEN :before AND :seq",
            ExpressionAttributeNames={"#chain": BY_CHAIN.partition_key, "#seq": BY_CHAIN.sort_key},
            ExpressionAttributeValues=to_item(
                {
                    ":chain": self.table.key(Partition.CHAIN, str(chain)),
                    ":before": chain_position(max(1, sequence - 1)),
                    ":seq": chain_position(sequence),
                }
            ),
        )
        entries = {entry.sequence: entry for entry in map(entry_of, map(from_item, answer["Items"]))}
        return linked_hash(self.table.merchant, entries, sequence)

    # -- writes, as parts of a unit of work ----------------------------------------

    def append(self, uow: DynamoUnitOfWork, entries: list[Entry]) -> None:
        """One payment's entries, placed at the end of its chain when ``uow`` commits (``ChainAppend``)."""
        if entries:
            uow.append(ChainAppend(self, entries))

    def entry_parts(self, head: Head, entries: list[Entry]) -> list[Part]:
        """The entries placed after ``head``, and the head's update on the condition that it has not moved."""
        placed, after = head.extend(self.table.merchant, entries)
        parts: list[Part] = [
            ("entry", put_new(self.table.name, self.entry_item(n, e), PK), lambda item: item)
            for n, e in enumerate(placed)
        ]
        return [*parts, self.head_part(head, after)]

    def head_part(self, head: Head, after: Head) -> Part:
        """``head`` moved to ``after``, on the condition that no other writer moved it first (label ``MOVED_HEAD``)."""
        moved = "attribute_not_exists(#pk)" if head.sequence == 0 else "#sequence = :expected"
        update = {
            "TableName": self.table.name,
            "Key": key_item(*self.head_key(head.chain)),
            "UpdateExpression": "SET #sequence = :sequence, #hash = :hash, #balances = :balances",
            "ConditionExpression": moved,
            "ExpressionAttributeNames": {"#sequence": "sequence", "#hash": "hash", "#balances": "balances"}
            | ({"#pk": PK} if head.sequence == 0 else {}),
            "ExpressionAttributeValues": to_item(
                {":sequence": after.sequence, ":hash": after.hash, ":balances": _balances_item(after)}
                | ({":expected": head.sequence} if head.sequence else {})
            ),
        }
        return MOVED_HEAD, {"Update": update}, lambda item: item

    def chain_fields(self, e: Entry) -> dict[str, Any]:
        """What places an entry in its chain: its fields, and the by_chain index's."""
        return {
            "payment_id": e.payment_id,
            "chain": e.chain,
            "sequence": e.sequence,
            "hash": e.hash,
            BY_CHAIN.partition_key: self.table.key(Partition.CHAIN, str(e.chain)),
            BY_CHAIN.sort_key: f"{e.sequence:012d}",  # chain_position
        }

    def entry_item(self, n: int, e: Entry) -> dict[str, Any]:
        """The ``n``-th entry placed by one write, as stored."""
        return {
            PK: self.table.key(Partition.LEDGER, e.payment_id),
            SK: f"ENTRY#{iso(e.created_at)}#{n}#{e.id}",
            "id": e.id,
            "account": e.account,
            "direction": e.direction.value,
            "amount": e.amount,
            "currency": e.currency,
            "created_at": iso(e.created_at),
            "refund_id": e.refund_id,
            "settlement_id": e.settlement_id,
            **self.chain_fields(e),
        }


class ChainAppend:
    """One payment's entries, placed at the end of its chain: after the head read ahead with the payment's token,
    else after a fresh read. An attempt that finds the head moved learns the new head from its own failure (the
    head part returns the item it found), and the next attempt, made at once, places the entries after that one
    without a read; attempts after a wait read the head again."""

    def __init__(self, chains: DynamoChainRecords, entries: list[Entry]) -> None:
        self.chains = chains
        self.entries = entries
        (self.chain,) = {chain_of(entry.payment_id) for entry in entries}
        self.head = chains.heads_read_ahead.pop(self.chain, None)

    def parts(self, reread: bool) -> list[Part]:
        head = None if reread else self.head
        *entries, (label, head_update, _) = self.chains.entry_parts(head or self.chains.head(self.chain), self.entries)
        return [*entries, (label, head_update, self._moved_to)]

    def _moved_to(self, found: dict[str, Any] | None) -> Head | None:
        """The head part's decoder, on a failed condition: the head another writer left (read afresh by the next
        attempt when the failure did not return it)."""
        self.head = head_of(found) if found else None
        return self.head


def chain_position(sequence: int) -> str:
    """An entry's sort key in the by_chain index (``chain_fields`` writes it): its sequence, zero-padded so that
    text order is sequence order."""
    return f"{sequence:012d}"


def _balances_item(head: Head) -> dict[str, int]:
    return {f"{currency}:{account}": amount for (account, currency), amount in head.balances.items()}


def head_of(values: dict[str, Any]) -> Head:
    balances = {}
    for key, amount in values.get("balances", {}).items():
        currency, account = key.split(":", 1)
        balances[(account, currency)] = int(amount)
    return Head(int(values[SK].removeprefix(HEAD_SK)), int(values["sequence"]), values["hash"], balances)


def entry_of(values: dict[str, Any]) -> Entry:
    """An entry as stored; ``payment_id`` from its key where an entry written before chains lacks the field."""
    return Entry(
        values["id"],
        values.get("payment_id") or str(values[PK]).rsplit("#", 1)[1],
        values["account"],
        Direction(values["direction"]),
        int(values["amount"]),
        values["currency"],
        parse_iso(values["created_at"]),
        values.get("refund_id"),
        int(values["chain"]) if "chain" in values else None,
        int(values["sequence"]) if "sequence" in values else None,
        values.get("hash"),
        values.get("settlement_id"),
    )
