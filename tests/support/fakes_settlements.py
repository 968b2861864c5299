"""The settlement records in memory, with the DynamoDB adapters' semantics: the merchant's
(``lambdas.ports.SettlementRecords``, ``lambdas.adapters.ledger.settlements``), a part of ``FakeLedgerStore``, and
the operator's (``lambdas.ports.SettlementImports``, ``lambdas.adapters.settlement_imports``) on a ``FakeDatabase``.

A share's mismatches are given as the DynamoDB store's query finds them: its lines' by line id, then its
``not_settled`` ones by reference."""

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from lambdas.domain.payments import Entry
from lambdas.domain.settlements import Expected, Mismatch, Settlement, Share, ShareLine, line_key
from lambdas.domain.timestamps import iso
from lambdas.ports import SettlementCursor, SettlementImport


@dataclass
class KeptExpected:
    expected: Expected
    not_settled_in: str | None = None  # the settlement a not_settled mismatch of it was reported in


@dataclass
class KeptShare:
    share: Share  # its totals, without mismatches
    lines: dict[str, ShareLine] = field(default_factory=dict)
    not_settled: dict[str, Mismatch] = field(default_factory=dict)  # by reference


@dataclass
class FakeSettlementLedger:
    """One merchant's expected movements, settlement cursor and shares."""

    expected: dict[str, KeptExpected] = field(default_factory=dict)
    cursor: SettlementCursor = field(default_factory=lambda: SettlementCursor({}, {}))
    shares: dict[str, KeptShare] = field(default_factory=dict)


class FakeSettlementRecords:
    """Mixed into ``FakeLedgerStore``: ``db`` (its lock), ``merchant``, ``ledger`` (its entries and
    ``settlements``) and ``_add_entries`` come from it."""

    db: Any
    merchant: str
    ledger: Any

    def _add_entries(self, uow: Any, entries: list[Entry]) -> None:
        raise NotImplementedError  # the ledger's part of the store

    @property
    def _settled(self) -> FakeSettlementLedger:
        kept: FakeSettlementLedger = self.ledger.settlements
        return kept

    def chain_entries(self, chain: int, after: int, limit: int) -> list[Entry]:
        with self.db.lock:
            kept = [e for entries in self.ledger.entries.values() for e in entries]
        on_chain = sorted((e for e in kept if e.chain == chain and (e.sequence or 0) > after), key=_sequence)
        found: list[Entry] = []
        for entry in on_chain[:limit]:
            if entry.sequence != after + len(found) + 1:
                break
            found.append(entry)
        return found

    def settlement_cursor(self) -> SettlementCursor:
        with self.db.lock:
            cursor = self._settled.cursor
            return replace(cursor, walked=dict(cursor.walked), checked=dict(cursor.checked))

    def move_settlement_cursor(self, before: SettlementCursor, after: SettlementCursor) -> bool:
        with self.db.lock:
            if self._settled.cursor.version != before.version:
                return False
            self._settled.cursor = replace(
                after, walked=dict(after.walked), checked=dict(after.checked), version=before.version + 1
            )
            return True

    def add_expected(self, expected: list[Expected]) -> None:
        with self.db.lock:
            for movement in expected:
                self._settled.expected.setdefault(movement.reference, KeptExpected(movement))

    def expected(self, references: list[str]) -> dict[str, Expected]:
        with self.db.lock:
            kept = self._settled.expected
            return {reference: kept[reference].expected for reference in references if reference in kept}

    def _settleable(self, reference: str) -> tuple[bool, Any]:
        """The condition of settling the movement: kept, and settled by no line."""
        kept = self._settled.expected.get(reference)
        return kept is not None and kept.expected.settled_by is None, kept.expected if kept else None

    def _unlisted(self, reference: str) -> tuple[bool, Any]:
        """The condition of reporting the movement not settled: kept, settled and listed by no line, and reported
        nowhere as not settled."""
        holds, found = self._settleable(reference)
        kept = self._settled.expected.get(reference)
        unlisted = kept is not None and kept.expected.listed_by is None and kept.not_settled_in is None
        return holds and unlisted, found

    def _share(self, settlement: Settlement, complete: bool) -> KeptShare:
        """The merchant's share of ``settlement``, made (``complete`` or not) when it has none."""
        made = Share(settlement.id, settlement.currency, settlement.created_at, complete=complete)
        return self._settled.shares.setdefault(settlement.id, KeptShare(made))

    def add_share_line(
        self, uow: Any, settlement: Settlement, line: ShareLine, names: Expected | None, entries: list[Entry]
    ) -> None:
        def recorded() -> tuple[bool, Any]:
            kept = self._settled.shares.get(settlement.id)
            found = kept.lines.get(line.line_id) if kept else None
            return found is None, found

        def apply() -> None:
            kept = self._share(settlement, complete=False)
            kept.lines[line.line_id] = line
            kept.share = replace(kept.share.with_line(line), mismatches=())

        uow.add("line", recorded, apply)
        key = line_key(settlement.id, line.line_id)
        if names is not None and line.mismatch is None:

            def settle() -> None:
                movement = self._settled.expected[names.reference]  # the condition held: it is kept
                movement.expected = replace(movement.expected, settled_by=key)

            uow.add("expected", lambda: self._settleable(names.reference), settle)
        elif names is not None:

            def list_it() -> None:
                movement = self._settled.expected.get(names.reference)  # read kept, and never removed
                if movement is not None and movement.expected.listed_by is None:
                    movement.expected = replace(movement.expected, listed_by=key)

            uow.add("expected", _always, list_it)
        self._add_entries(uow, entries)

    def add_not_settled(self, uow: Any, settlement: Settlement, expected: Expected, mismatch: Mismatch) -> None:
        def apply() -> None:
            self._settled.expected[expected.reference].not_settled_in = settlement.id
            kept = self._share(settlement, complete=True)
            kept.not_settled[expected.reference] = mismatch
            kept.share = replace(kept.share.with_mismatch(mismatch), mismatches=())

        uow.add("expected", lambda: self._unlisted(expected.reference), apply)

    def complete_share(self, uow: Any, share: Share) -> None:
        def check() -> tuple[bool, Any]:
            kept = self._settled.shares.get(share.settlement_id)
            return kept is None or not kept.share.complete, kept.share if kept else None

        def apply() -> None:
            made = Share(share.settlement_id, share.currency, share.created_at)
            kept = self._settled.shares.setdefault(share.settlement_id, KeptShare(made))
            kept.share = replace(kept.share, complete=True)

        uow.add("share", check, apply)

    def get_share(self, settlement_id: str) -> Share | None:
        with self.db.lock:
            kept = self._settled.shares.get(settlement_id)
            if kept is None:
                return None
            lines = [kept.lines[line_id].mismatch for line_id in sorted(kept.lines)]
            mismatches = [m for m in lines if m] + [kept.not_settled[r] for r in sorted(kept.not_settled)]
            return replace(kept.share, mismatches=tuple(mismatches))

    def list_shares(self, limit: int, starting_after: Share | None) -> tuple[list[Share], bool]:
        def place(share: Share) -> tuple[str, str]:
            return iso(share.created_at), share.settlement_id

        with self.db.lock:
            complete = [kept.share for kept in self._settled.shares.values() if kept.share.complete]
        newest_first = sorted(complete, key=place, reverse=True)
        if starting_after is not None:
            newest_first = [s for s in newest_first if place(s) < place(starting_after)]
        return newest_first[:limit], len(newest_first) > limit


def _always() -> tuple[bool, Any]:
    return True, None


def _sequence(entry: Entry) -> int:
    return entry.sequence or 0


@dataclass
class FakeImportLedger:
    """The operator's record of the gateway's settlements."""

    imports: dict[str, SettlementImport] = field(default_factory=dict)  # without their unknown lines
    unknown: dict[str, dict[str, Mismatch]] = field(default_factory=dict)  # settlement id -> line id -> mismatch
    watermark: int = 0


class FakeSettlementImports:
    """``lambdas.ports.SettlementImports`` on a ``FakeDatabase`` (its ``settlement_imports``, under its lock)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    @property
    def _kept(self) -> FakeImportLedger:
        kept: FakeImportLedger = self.db.settlement_imports
        return kept

    def watermark(self) -> int:
        with self.db.lock:
            return self._kept.watermark

    def begin(self, settlement: Settlement, now: datetime) -> SettlementImport:
        with self.db.lock:
            self._kept.imports.setdefault(settlement.id, SettlementImport(settlement, now))
            return self._attached(settlement.id)

    def advance(self, settlement_id: str, after_line: str) -> None:
        with self.db.lock:
            kept = self._kept.imports[settlement_id]
            self._kept.imports[settlement_id] = replace(kept, after_line=after_line)

    def add_unknown(self, settlement_id: str, mismatch: Mismatch) -> bool:
        with self.db.lock:
            lines = self._kept.unknown.setdefault(settlement_id, {})
            if mismatch.gateway_line in lines:
                return False
            lines[str(mismatch.gateway_line)] = mismatch
            return True

    def finish(self, settlement: Settlement) -> None:
        with self.db.lock:
            kept = self._kept.imports[settlement.id]
            self._kept.imports[settlement.id] = replace(kept, done=True)

    def raise_watermark(self, created: int) -> None:
        with self.db.lock:
            self._kept.watermark = max(self._kept.watermark, created)

    def imports(self, created_from: int, created_to: int) -> list[SettlementImport]:
        with self.db.lock:
            found = [i.settlement for i in self._kept.imports.values()]
            chosen = sorted((s.created, s.id) for s in found if created_from <= s.created <= created_to)
            return [self._attached(settlement_id) for _, settlement_id in chosen]

    def newest_done(self, currency: str) -> Settlement | None:
        with self.db.lock:
            done = [i.settlement for i in self._kept.imports.values() if i.done and i.settlement.currency == currency]
        return max(done, key=lambda settlement: (settlement.created, settlement.id), default=None)

    def _attached(self, settlement_id: str) -> SettlementImport:
        """The import with its unknown lines, by line id (as the DynamoDB store's query finds them)."""
        unknown = self._kept.unknown.get(settlement_id, {})
        return replace(self._kept.imports[settlement_id], unknown=tuple(unknown[line] for line in sorted(unknown)))
