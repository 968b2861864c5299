"""A settlement import killed at any of its writes, just before or just after it lands, then run again: what is
booked, shown and told is exactly what an import that never crashed books, shows and tells."""

import contextlib
from datetime import timedelta

import pytest

from lambdas.domain.events import EventType
from lambdas.domain.payments import RECEIVABLE
from lambdas.use_cases import settlements
from lambdas.use_cases.settlements import import_settlements
from tests.support.fakes import FakeUnitOfWork, fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.fakes_settlements import FakeSettlementImports
from tests.support.payments import captured

IMPORT_WRITES = ("advance", "finish", "add_unknown", "begin", "raise_watermark")


class Killed(BaseException):
    """The function stopped (not an ``Exception``: the import's own handlers must not catch it)."""


def settled_world(kill_at: int | None, after_the_write: bool, monkeypatch):
    """Three payments (one refunded in part, one left out of the settlement), one unknown line, pages of 2 lines:
    imported with the ``kill_at``-th write killed, then again (three days on: not_settled reported too)."""
    gateway = FakeGateway()
    world = fake_world(gateway)
    imports = FakeSettlementImports(world.db)
    monkeypatch.setattr(settlements, "LINES_PAGE", 2)
    paid = [captured(world, 1000 + n) for n in range(3)]
    assert world.service.refund(paid[0], 300, "r1").status == 201
    gateway.settle(drop=(paid[2],), unknown=1)
    writes = 0

    def killable(write):
        def write_or_die(*args, **kwargs):
            nonlocal writes
            writes += 1
            if writes == kill_at and not after_the_write:
                raise Killed
            result = write(*args, **kwargs)
            if writes == kill_at and after_the_write:
                raise Killed
            return result

        return write_or_die

    monkeypatch.setattr(FakeUnitOfWork, "commit", killable(FakeUnitOfWork.commit))
    for name in IMPORT_WRITES:
        monkeypatch.setattr(imports, name, killable(getattr(imports, name)))
    merchants = [world.tenancy.dependencies(merchant) for merchant in world.tenancy.directory.merchants()]
    for day in (0, 4):
        world.clock.advance(timedelta(days=day))
        for _ in range(2):
            with contextlib.suppress(Killed):
                import_settlements(gateway, imports, merchants, world.clock)
    return world, writes


def outcome(world) -> tuple:
    entries = [entry for entries in world.ledger.entries.values() for entry in entries]
    booked = sorted(
        (e.refund_id is not None, e.account, e.direction.value, e.amount) for e in entries if e.settlement_id
    )
    balances = {(row["account"], row["currency"]): row["amount"] for row in world.service.balances().body["balances"]}
    told = sorted(
        (event.type.value, event.settlement.mismatch_count)
        for event in world.ledger.events.values()
        if event.type in (EventType.SETTLEMENT_RECONCILED, EventType.SETTLEMENT_MISMATCH)
    )
    return booked, balances, told


@pytest.fixture(scope="module")
def never_killed():
    with pytest.MonkeyPatch.context() as monkeypatch:
        world, writes = settled_world(None, False, monkeypatch)
        return outcome(world), writes


def test_the_import_unkilled_books_the_settled_lines_and_reports_the_one_left_out(never_killed):
    (booked, balances, told), writes = never_killed
    assert len(booked) == 2 * 4 + 2  # two captures' fee and net, the refund's net
    assert balances[(RECEIVABLE, "USD")] == 1002  # the payment left out, still owed
    assert told == [("settlement.mismatch", 1), ("settlement.reconciled", 0)]
    assert writes >= 15


@pytest.mark.parametrize("after_the_write", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("kill_at", range(1, 16))
def test_an_import_killed_at_any_write_ends_as_one_never_killed(never_killed, kill_at, after_the_write, monkeypatch):
    world, _ = settled_world(kill_at, after_the_write, monkeypatch)
    assert outcome(world) == never_killed[0]
