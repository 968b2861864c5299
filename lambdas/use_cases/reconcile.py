"""Scheduled: settles payments, refunds and authorisations' captures and cancels left pending by lost gateway answers,
and cancels (and voids) authorisations past ``capture_before``, for every merchant.

It pages through every merchant's pending items and takes them in turns, one
merchant's item after another's (merchants in a random order, each merchant's
items shuffled), so that neither one merchant's backlog nor items stuck at a
silent gateway can starve the others run after run; it stops starting items
when the run's deadline is near (``deferred``: the next run takes them).
One item's error is logged and counted and does not stop the run. Items still pending ``OVERDUE_AFTER`` after their
creation when the run is done with them are counted ``overdue`` (the backlog alarm's metric). An item is given up
(payment ``failed``, refund cancelled and its reservation released) only when the gateway has no record of it after
``give_up_after`` *and* no request holds its idempotency key."""

import itertools
import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from lambdas import deadline
from lambdas.domain.events import payment_event
from lambdas.domain.payments import AUTHORIZATION_VALIDITY, Payment, RefundStatus, Status
from lambdas.logs import logger
from lambdas.ports import LostRace, PendingItem, UnitOfWork, UoW
from lambdas.use_cases import Dependencies, captures
from lambdas.use_cases.payments import check_charge, settle
from lambdas.use_cases.refunds import add_failure, book, check_made

ITEM_SECONDS = 1.0  # the least time worth starting an item with: a lookup and a write
SETTLE_AFTER = timedelta(minutes=1)
GIVE_UP_AFTER = timedelta(hours=1)
OUTCOMES = ("settled", "failed", "expired", "still_pending", "errors", "deferred")  # what a run counts
OVERDUE_AFTER = timedelta(minutes=10)  # an item still pending this long after its creation is counted "overdue"


def reconcile(
    merchants: Sequence[Dependencies[UoW]],
    settle_after: timedelta = SETTLE_AFTER,
    give_up_after: timedelta = GIVE_UP_AFTER,
) -> dict[str, int]:
    """``merchants``: each merchant's dependencies (its stores reach only its items)."""
    counts = dict.fromkeys((*OUTCOMES, "overdue"), 0)
    queues: list[list[tuple[Dependencies[UoW], datetime, PendingItem]]] = []
    for deps in merchants:
        now = deps.clock()
        try:
            due = [*deps.store.pending(now - settle_after), *deps.store.authorizations(now - AUTHORIZATION_VALIDITY)]
            items = [(deps, now, item) for item in due]
        except Exception:  # one merchant's listing failing must not stop the others
            logger.exception("reconcile listing failed")
            counts["errors"] += 1
            continue
        random.shuffle(items)
        queues.append(items)
    random.shuffle(queues)
    for deps, now, item in _in_turns(queues):
        if deadline.remaining() < ITEM_SECONDS:
            outcome = "deferred"
        else:
            outcome = _settle(deps, item, now - settle_after, now - give_up_after)
        counts[outcome] += 1
        if outcome not in ("settled", "failed", "expired") and item.created_at < now - OVERDUE_AFTER:
            counts["overdue"] += 1
    return counts


def _settle(deps: Dependencies[UoW], item: PendingItem, ask_again_before: datetime, give_up_before: datetime) -> str:
    try:
        if item.refund_id:
            return _refund(deps, item, give_up_before)
        return _payment(deps, item, ask_again_before, give_up_before)
    except Exception:  # one item's trouble (the gateway's, a bad answer) must not stop the others
        logger.exception("reconcile item failed", extra={"payment_id": item.payment_id, "refund_id": item.refund_id})
        return "errors"


def _in_turns(queues: list[list[Any]]) -> Iterator[Any]:
    """The first of each queue, then the second of each, and so on."""
    for round_ in itertools.zip_longest(*queues):
        yield from (entry for entry in round_ if entry is not None)


def _payment(deps: Dependencies[UoW], item: PendingItem, ask_again_before: datetime, give_up_before: datetime) -> str:
    payment = deps.store.get_payment(item.payment_id, with_metadata=False, to_book=True)
    if payment is not None and payment.status is Status.REQUIRES_CAPTURE:
        return _authorization(deps, payment, ask_again_before)
    if payment is None or payment.status is not Status.PENDING:
        return "settled"
    charge = deps.gateway.find_charge(payment.id)
    if charge is not None:
        settle(deps, payment, check_charge(payment, charge), None)
        return "settled"
    if payment.created_at > give_up_before:
        return "still_pending"
    failed = payment.fail()
    uow = deps.store.unit_of_work()
    deps.store.settle_payment(uow, payment, failed, [])
    deps.store.add_event(uow, payment_event(failed, deps.clock()))
    if payment.idempotency_id:
        deps.idempotency.require_idle(uow, payment.idempotency_id)
    return _commit_give_up(uow)


def _authorization(deps: Dependencies[UoW], payment: Payment, ask_again_before: datetime) -> str:
    """Its claimed capture or cancel settled (asked again once claimed before ``ask_again_before``), or it expired."""
    if payment.action is not None:
        return "settled" if captures.settle_claimed(deps, payment, ask_again_before) else "still_pending"
    return "expired" if captures.expire(deps, payment) else "settled"


def _refund(deps: Dependencies[UoW], item: PendingItem, give_up_before: datetime) -> str:
    payment = deps.store.get_payment(item.payment_id, with_metadata=False)
    refund = deps.store.get_refund(item.payment_id, item.refund_id or "")
    if payment is None or refund is None or refund.status is not RefundStatus.PENDING:
        return "settled"
    made = deps.gateway.find_refund(refund.id)
    if made is not None:
        book(deps, payment, refund, check_made(payment, refund, made), None)
        return "settled"
    if refund.created_at > give_up_before:
        return "still_pending"
    uow = deps.store.unit_of_work()
    add_failure(deps, uow, payment, refund)
    if refund.idempotency_id:
        deps.idempotency.require_idle(uow, refund.idempotency_id)
    return _commit_give_up(uow)


def _commit_give_up(uow: UnitOfWork) -> str:
    try:
        uow.commit()
    except LostRace:
        return "still_pending"  # a request holds the key (it is settling the item) or it was settled meanwhile
    return "failed"
