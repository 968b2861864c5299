"""Scheduled: imports the gateway's settlements and matches every line against the merchants' ledgers.

A run, for every merchant at once (the gateway settles every merchant's lines together):

1. walks each merchant's chains on from where the last run stopped, keeping the movements its ledger expects the
   gateway to settle (``lambdas.domain.settlements.Expected``, by reference);
2. imports each settlement not yet imported in full, oldest first, page by page on from the last line imported.
   A line is booked (its fee and net, on the payment's chain) or recorded as a mismatch in the share of the merchant
   that owns its reference, or kept as the operator's unknown reference. Each is written once, by conditional
   writes, so that retries, crashes and concurrent runs book it once; a line whose payment or refund the ledger has
   not settled yet (an answer reconciliation still has to settle) stops its settlement there until a later run;
3. completes each merchant's share of a settlement imported in full: it is shown from then on, and its event
   (``settlement.reconciled`` or ``settlement.mismatch``) is written with it;
4. reports each movement no settlement listed within ``NOT_SETTLED_AFTER`` as ``not_settled``, in the merchant's
   share of the newest settlement of its currency.

One merchant's or one settlement's error is logged and counted and does not stop the others."""

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Generic

from lambdas import deadline
from lambdas.domain.events import settlement_event
from lambdas.domain.ids import is_id
from lambdas.domain.payments import Entry, Payment, Status
from lambdas.domain.settlements import (
    NOT_SETTLED_AFTER,
    Expected,
    Mismatch,
    MismatchReason,
    Settlement,
    SettlementLine,
    Share,
    ShareLine,
    compare,
    expected_of,
    is_reference,
    names,
    not_settled,
    settlement_entries,
    unknown,
)
from lambdas.gateway import Gateway, GatewayInvalidAnswer
from lambdas.logs import logger
from lambdas.ports import LostRace, SettlementImport, SettlementImports, UoW
from lambdas.use_cases import Dependencies

COUNTS = (
    "settlements",
    "matched",
    "mismatched",
    "unknown_references",
    "not_settled",
    "not_settled_waiting",  # overdue movements with no settlement of their currency to be reported in yet
    "deferred",
    "errors",
)
LINES_PAGE = 100  # the most lines the gateway gives in one page
CHAIN_PAGE = 100  # entries read from a chain at a time
# Settlements are listed from this long before the watermark: their ``created`` is whole seconds, so one made in the
# same second as the last imported may be listed after it.
RELIST_SECONDS = 24 * 3600
PAGE_SECONDS = 5.0  # the least time worth starting a page of lines with: its lookup and its writes
# A line whose refund no merchant's ledger expects may be one whose answer reconciliation has still to settle (within
# minutes, unless reconciliation itself is down, which its own alarms tell): it is the operator's unknown reference
# only once this long has passed since its settlement was first seen. Until then the settlement waits there.
UNKNOWN_REFUND_AFTER = timedelta(days=1)


class Deferred(Exception):
    """A line cannot be matched yet: its settlement waits for a later run from there."""


@dataclass
class SettlementRun(Generic[UoW]):
    """One run of the import: the gateway, the operator's record, every merchant's dependencies, and the counts."""

    gateway: Gateway
    imports: SettlementImports
    merchants: Sequence[Dependencies[UoW]]
    clock: Callable[[], datetime]
    counts: dict[str, int]

    def run(self) -> dict[str, int]:
        self._each_merchant(walk)
        try:
            listed = self.gateway.settlements(max(0, self.imports.watermark() - RELIST_SECONDS))
        except Exception:  # the gateway's trouble: what was imported before is still checked
            logger.exception("settlements could not be listed")
            self.counts["errors"] += 1
            listed = []
        all_done = True  # every settlement listed so far is imported in full: the watermark may move up to it
        for settlement in sorted(listed, key=lambda listed_one: listed_one.created):
            done = self._import(settlement)
            all_done = all_done and done
            if all_done:
                self.imports.raise_watermark(settlement.created)
        self._each_merchant(self.report_not_settled)
        return self.counts

    def _each_merchant(self, step: Callable[[Dependencies[UoW]], None]) -> None:
        for deps in self.merchants:
            try:
                step(deps)
            except Exception:  # one merchant's trouble must not stop the others
                logger.exception("settlement step failed", extra={"step": step.__name__})
                self.counts["errors"] += 1

    def _import(self, settlement: Settlement) -> bool:
        """Whether ``settlement`` is imported in full now; one settlement's trouble does not stop the others."""
        try:
            return self.import_settlement(settlement)
        except Deferred:
            self.counts["deferred"] += 1
        except Exception:
            logger.exception("settlement import failed", extra={"settlement_id": settlement.id})
            self.counts["errors"] += 1
        return False

    def import_settlement(self, settlement: Settlement) -> bool:
        """Every line not yet imported, page by page (each page's progress kept), then every share completed. A
        gateway whose pages repeat lines without moving on is refused (``GatewayInvalidAnswer``), not followed."""
        progress = self.imports.begin(settlement, self.clock())
        if progress.done:
            return True
        after, more, seen = progress.after_line, True, set[str]()
        pages_left = settlement.lines // LINES_PAGE + 2  # the pages its line count needs, and one more
        while more:
            if deadline.remaining() < PAGE_SECONDS:
                raise Deferred(settlement.id)  # the next run takes it on from ``after``
            lines, more = self.gateway.settlement_lines(settlement.id, after, LINES_PAGE)
            new = [line for line in lines if line.id not in seen]
            pages_left -= 1
            if (more and not new) or pages_left < 0:
                raise GatewayInvalidAnswer(f"settlement {settlement.id}: its pages of lines do not move on")
            seen.update(line.id for line in new)
            try:
                for line, owner in zip(new, self._owners(new), strict=True):
                    self.take_line(progress, line, owner)
                    after = line.id
            finally:
                if after is not None and after != progress.after_line:
                    self.imports.advance(settlement.id, after)
        for deps in self.merchants:
            complete_share(deps, settlement)
        self.imports.finish(settlement)
        self.counts["settlements"] += 1
        return True

    def _owners(self, lines: list[SettlementLine]) -> list[tuple[Dependencies[UoW], Expected] | None]:
        """Each line's expected movement, if it names one, and the merchant whose it is."""
        references = [line.reference for line in lines if line.reference and is_reference(line.reference)]
        found: dict[str, tuple[Dependencies[UoW], Expected]] = {}
        for deps in self.merchants:
            for reference, expected in deps.store.expected(references).items():
                found.setdefault(reference, (deps, expected))
        return [found.get(line.reference or "") for line in lines]

    def take_line(
        self, progress: SettlementImport, line: SettlementLine, owner: tuple[Dependencies[UoW], Expected] | None
    ) -> None:
        if owner is not None:
            if names(line, owner[1]):
                self.book_line(progress.settlement, line, *owner)
            else:
                self._unknown(progress, line)  # its reference, with another type or gateway id: not that movement
            return
        found = self._payment_of(line)
        if found is not None:
            deps, payment = found
            if _will_be_expected(payment):
                raise Deferred(line.id)  # settled, or still to settle, but not walked yet: the next run has it
            reference = line.reference or ""
            never_owed = Mismatch(
                reference, line.id, MismatchReason.AMOUNT_DIFFERS, 0, line.amount, None, line.currency
            )
            self._record(deps, ShareLine.of(progress.settlement, line, never_owed), progress.settlement)
            return
        waiting = line.type == "refund" and is_reference(line.reference)
        if waiting and self.clock() < progress.first_seen_at + UNKNOWN_REFUND_AFTER:
            raise Deferred(line.id)  # maybe a refund reconciliation has still to settle
        self._unknown(progress, line)

    def _unknown(self, progress: SettlementImport, line: SettlementLine) -> None:
        if self.imports.add_unknown(progress.settlement.id, unknown(line)):
            self.counts["unknown_references"] += 1

    def _payment_of(self, line: SettlementLine) -> tuple[Dependencies[UoW], Payment] | None:
        """The merchant and the payment a charge line names (None: no merchant's, or not a charge line)."""
        if line.type != "charge" or line.reference is None or not is_id("pay", line.reference):
            return None
        for deps in self.merchants:
            payment = deps.store.get_payment(line.reference, with_metadata=False)
            if payment is not None:
                return deps, payment
        return None

    def book_line(
        self, settlement: Settlement, line: SettlementLine, deps: Dependencies[UoW], expected: Expected
    ) -> None:
        """The line booked against its movement, or recorded as a mismatch when it differs: once. A movement another
        line settled meanwhile is read again, and this line, compared with it again, is then a mismatch."""
        for _ in range(2):
            mismatch = compare(settlement, line, expected)
            entries = [] if mismatch else settlement_entries(settlement.id, line, expected, deps.clock())
            try:
                self._record(deps, ShareLine.of(settlement, line, mismatch), settlement, expected, entries)
                return
            except LostRace as race:
                if "line" in race.conflicts:
                    return  # recorded before (a retry, an overlapping run)
                reread = deps.store.expected([expected.reference]).get(expected.reference)
                if reread is None or reread.settled_by is None:
                    raise
                expected = reread
        raise RuntimeError(f"line {line.id}: its movement kept changing")  # not reached: a settled one is a mismatch

    def _record(
        self,
        deps: Dependencies[UoW],
        line: ShareLine,
        settlement: Settlement,
        names_expected: Expected | None = None,
        entries: Sequence[Entry] = (),
    ) -> None:
        """Add ``line`` to the merchant's share (raises ``LostRace``); a mismatch recorded before counts nothing."""
        uow = deps.store.unit_of_work()
        deps.store.add_share_line(uow, settlement, line, names_expected, list(entries))
        try:
            uow.commit()
        except LostRace as race:
            if line.mismatch is not None and "line" in race.conflicts:
                return
            raise
        self.counts["mismatched" if line.mismatch else "matched"] += 1

    def report_not_settled(self, deps: Dependencies[UoW]) -> None:
        """Each movement walked that succeeded ``NOT_SETTLED_AFTER`` ago and that no line settled or listed: reported
        once, in the merchant's share of the newest settlement of its currency (none yet: counted as waiting, and
        checked again by the next run, which checks the movements after it meanwhile too)."""
        cursor = deps.store.settlement_cursor()
        checked = dict(cursor.checked)
        due_before = deps.clock() - NOT_SETTLED_AFTER
        for chain, walked in cursor.walked.items():
            checked[chain] = self._check_chain(deps, chain, checked.get(chain, 0), walked, due_before)
        if checked != cursor.checked:
            deps.store.move_settlement_cursor(cursor, replace(cursor, checked=checked))

    def _check_chain(self, deps: Dependencies[UoW], chain: int, checked: int, walked: int, due_before: datetime) -> int:
        """How far ``chain`` is checked now, from ``checked``: up to its first entry too recent to tell, or up to the
        first movement still waiting for a settlement to be reported in."""
        at, waiting = checked, False
        while at < walked:
            entries = [e for e in deps.store.chain_entries(chain, at, CHAIN_PAGE) if (e.sequence or 0) <= walked]
            for entry in entries:
                if entry.created_at > due_before:
                    return checked
                waiting = not self._check(deps, entry) or waiting
                at = entry.sequence or at
                checked = checked if waiting else at
            if not entries:
                break
        return checked

    def _check(self, deps: Dependencies[UoW], entry: Entry) -> bool:
        """Whether the movement ``entry`` tells of, if any, is settled, listed or reported (False: nowhere to report
        it yet)."""
        movement = expected_of(entry)
        if movement is None:
            return True
        kept = deps.store.expected([movement.reference]).get(movement.reference)
        if kept is None or kept.settled_by is not None or kept.listed_by is not None:
            return True
        settlement = self.imports.newest_done(kept.currency)
        if settlement is None:
            self.counts["not_settled_waiting"] += 1
            return False
        if report_not_settled_in(deps, settlement, kept):
            self.counts["not_settled"] += 1
        return True


def _will_be_expected(payment: Payment) -> bool:
    """Whether the ledger will expect a settlement of the payment: captured (not walked yet), or with a charge or
    capture whose answer reconciliation has still to settle."""
    claimed = payment.status is Status.REQUIRES_CAPTURE and payment.action is not None
    return payment.status in (Status.PENDING, Status.SUCCEEDED) or claimed


def walk(deps: Dependencies[UoW]) -> None:
    """Keep every movement written on the merchant's chains since the last walk, and move its cursor past them."""
    cursor = deps.store.settlement_cursor()
    walked = dict(cursor.walked)
    for head in deps.store.heads():
        at = walked.get(head.chain, 0)
        while at < head.sequence:
            entries = deps.store.chain_entries(head.chain, at, CHAIN_PAGE)
            if not entries:
                break  # the chain index does not show the next entry yet: the next run walks on from here
            deps.store.add_expected([with_gateway_id(deps, m) for m in map(expected_of, entries) if m])
            at = entries[-1].sequence or at
        walked[head.chain] = at
    if walked != cursor.walked:
        deps.store.move_settlement_cursor(cursor, replace(cursor, walked=walked))


def with_gateway_id(deps: Dependencies[UoW], expected: Expected) -> Expected:
    """``expected`` with the gateway's id of its charge or refund, as its payment or refund has it."""
    if expected.refund_id is None:
        payment = deps.store.get_payment(expected.payment_id, with_metadata=False)
        return replace(expected, gateway_id=payment.charge_id if payment else None)
    refund = deps.store.get_refund(expected.payment_id, expected.refund_id)
    return replace(expected, gateway_id=refund.gateway_refund_id if refund else None)


def complete_share(deps: Dependencies[UoW], settlement: Settlement) -> None:
    """Show the merchant's share of ``settlement``, once, with its event (nothing when it has no share)."""
    share = deps.store.get_share(settlement.id)
    if share is None or share.complete:
        return
    completed = replace(share, complete=True)
    uow = deps.store.unit_of_work()
    deps.store.complete_share(uow, completed)
    deps.store.add_event(uow, settlement_event(completed, deps.clock()))
    with suppress(LostRace):  # another run completed it
        uow.commit()


def report_not_settled_in(deps: Dependencies[UoW], settlement: Settlement, expected: Expected) -> bool:
    """Record ``expected`` as not settled in the merchant's share of ``settlement``, once, with its event; False when
    it was reported before, or settled or listed meanwhile."""
    mismatch = not_settled(expected)
    share = deps.store.get_share(settlement.id)
    if share is None:
        share = Share(settlement.id, settlement.currency, settlement.created_at, complete=True)
    uow = deps.store.unit_of_work()
    deps.store.add_not_settled(uow, settlement, expected, mismatch)
    deps.store.add_event(uow, settlement_event(share.with_mismatch(mismatch), deps.clock()))
    try:
        uow.commit()
    except LostRace:
        return False
    return True


def import_settlements(
    gateway: Gateway, imports: SettlementImports, merchants: Sequence[Dependencies[UoW]], clock: Callable[[], datetime]
) -> dict[str, int]:
    """One run of the import (see the module's docstring): what it counted."""
    return SettlementRun(gateway, imports, merchants, clock, dict.fromkeys(COUNTS, 0)).run()
