"""Scheduled: deliver every merchant's due events to its webhook endpoints, at least once.

Each run takes the events due (``WebhookRecords.due_events``), in turns between merchants, in waves: each event of a
wave is leased (its ``due_at`` moved ``lease`` ahead by a conditional update, so no other run takes it meanwhile),
then every POST of the wave is sent at once, to each endpoint that subscribes to the event's type, is not deleted,
and does not have it yet. Each attempt is recorded. An event every endpoint has leaves the index; one that some
endpoint still lacks is due again after the schedule's next (jittered) wait, and after its last wait it goes to the
dead-letter queue and leaves the index. A run that stops mid-wave (a crash, the function's timeout) leaves its events
leased: the lease runs out and a later run sends them again. A new wave starts only while one POST still fits, and
the run lists the due events again when it has taken all it listed, until none is due or its time is up."""

import itertools
import json
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from lambdas import deadline
from lambdas.domain.events import Event
from lambdas.domain.timestamps import parse_iso
from lambdas.domain.webhooks import (
    EVENT_ID_HEADER,
    MAX_ENDPOINTS,
    SIGNATURE_HEADER,
    Attempt,
    Endpoint,
    RetrySchedule,
)
from lambdas.domain.webhooks import signature_header as sign
from lambdas.logs import logger
from lambdas.ports import DeadLetters, DueEvent, Lease, Sent, UoW, WebhookSender
from lambdas.use_cases import Dependencies

POST_SECONDS = 11.0  # the least time worth starting a wave with: one POST's timeout, and the writes after it
MAX_SENDERS = 32
# A wave's POSTs all run at once (every endpoint of each of its events), so a wave lasts at most one POST's timeout.
WAVE_EVENTS = MAX_SENDERS // MAX_ENDPOINTS


@dataclass(frozen=True)
class DeliverySettings:
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    lease: timedelta = timedelta(minutes=2)  # longer than a run: a leased event is not sent by two runs at once
    batch: int = 50  # events per merchant per run


@dataclass
class _Round:
    deps: Dependencies[Any]
    lease: Lease
    event: Event
    body: bytes
    endpoints: list[Endpoint]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # each endpoint's request headers, signed
    sent: dict[str, Sent] = field(default_factory=dict)


Counts = dict[str, float]
Render = Callable[[Event], dict[str, object]]


def deliver(
    merchants: Sequence[Dependencies[UoW]],
    sender: WebhookSender,
    dead_letters: DeadLetters,
    render: Render,
    settings: DeliverySettings,
) -> Counts:
    """``render``: the event as GET /events/{id} shows it. Counts: POSTs delivered and failed, events dead-lettered,
    errors, and the age (seconds) of the oldest event still undelivered: of those whose round failed, and of those
    still due when the run ends (a backlog the run had no time for)."""
    counts: Counts = dict.fromkeys(("delivered", "failed", "dead_lettered", "errors", "oldest_undelivered_seconds"), 0)
    secrets: dict[tuple[str, str], str | None] = {}  # (merchant, endpoint) -> its secret, opened once a run
    taken: set[tuple[str, str]] = set()  # (merchant, event): one round per event per run
    while deadline.remaining() >= POST_SECONDS and (turns := _due_in_turns(merchants, settings.batch, taken, counts)):
        while deadline.remaining() >= POST_SECONDS and (wave := list(itertools.islice(turns, WAVE_EVENTS))):
            rounds = [r for r in (_leased(deps, due, render, settings, counts) for deps, due in wave) if r is not None]
            for round_ in rounds:
                _sign(round_, secrets)
            _send_all(rounds, sender)
            for round_ in rounds:
                _end(round_, dead_letters, settings, counts)
    _count_backlog(merchants, counts)
    return counts


def _due_in_turns(
    merchants: Sequence[Dependencies[Any]], batch: int, taken: set[tuple[str, str]], counts: Counts
) -> Iterator[tuple[Dependencies[Any], DueEvent]] | None:
    """Up to ``batch`` due events of each merchant not ``taken`` in this run yet (then they are), in turns between
    merchants (None: none is left)."""
    queues = []
    for deps in merchants:
        try:
            due = [
                d for d in deps.store.due_events(deps.clock(), batch) if (deps.store.merchant, d.event_id) not in taken
            ]
        except Exception:  # one merchant's listing failing must not stop the others
            logger.exception("due events not listed")
            counts["errors"] += 1
            continue
        taken.update((deps.store.merchant, d.event_id) for d in due)
        queues.append([(deps, d) for d in due])
    if not any(queues):
        return None
    random.shuffle(queues)
    return _in_turns(queues)


def _count_backlog(merchants: Sequence[Dependencies[Any]], counts: Counts) -> None:
    """The events still due as the run ends count towards the oldest undelivered age, by how long they have been
    due (the index keeps when each round is due, not when the event was made)."""
    for deps in merchants:
        try:
            now = deps.clock()
            for due in deps.store.due_events(now, 1):
                overdue = (now - parse_iso(due.due_at)).total_seconds()
                counts["oldest_undelivered_seconds"] = max(counts["oldest_undelivered_seconds"], overdue)
        except Exception:
            logger.exception("due events not listed")
            counts["errors"] += 1


def _in_turns(queues: list[list[tuple[Dependencies[Any], DueEvent]]]) -> Iterator[tuple[Dependencies[Any], DueEvent]]:
    for round_ in itertools.zip_longest(*queues):
        yield from (entry for entry in round_ if entry is not None)


def _leased(
    deps: Dependencies[Any], due: DueEvent, render: Render, settings: DeliverySettings, counts: Counts
) -> "_Round | None":
    """The event leased for a round, with the endpoints still to send it to (None: another run has it)."""
    try:
        lease = deps.store.lease(due, deps.clock() + settings.lease)
        if lease is None:
            return None
        event = deps.store.get_event(due.event_id)
        if event is None:  # expired meanwhile: nothing is left to deliver
            deps.store.end_round(lease, lease.delivered, None)
            return None
        endpoints = [e for e in deps.store.endpoints() if e.subscribes(event.type) and e.id not in lease.delivered]
        body = json.dumps(render(event), separators=(",", ":")).encode()
        return _Round(deps, lease, event, body, endpoints)
    except Exception:
        logger.exception("event not leased", extra={"event_id": due.event_id})
        counts["errors"] += 1
        return None


def _sign(round_: _Round, secrets: dict[tuple[str, str], str | None]) -> None:
    """Each endpoint's headers, signed with its secret (opened here, before the POSTs: they make no AWS call); an
    endpoint whose secret cannot be opened gets no request, and the attempt says so."""
    deps = round_.deps
    timestamp = int(deps.clock().timestamp())
    for endpoint in round_.endpoints:
        key = (deps.store.merchant, endpoint.id)
        if key not in secrets:
            try:
                secrets[key] = deps.store.endpoint_secret(endpoint.id)
            except Exception:
                logger.exception("webhook secret not opened", extra={"endpoint_id": endpoint.id})
                secrets[key] = None
        secret = secrets[key]
        if secret is None:
            round_.sent[endpoint.id] = Sent(error="secret_unavailable")
            continue
        round_.headers[endpoint.id] = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: round_.event.id,
            SIGNATURE_HEADER: sign(secret, round_.body, timestamp),
        }


def _send_all(rounds: list[_Round], sender: WebhookSender) -> None:
    """Every POST of the wave at once (network only); a crash in any stops the run (the leases then run out)."""
    posts = [(round_, endpoint) for round_ in rounds for endpoint in round_.endpoints if endpoint.id in round_.headers]
    if not posts:
        return
    with ThreadPoolExecutor(max_workers=len(posts)) as pool:  # at most MAX_SENDERS: WAVE_EVENTS x MAX_ENDPOINTS
        results = list(
            pool.map(lambda post: sender.send(post[1].url, post[0].body, post[0].headers[post[1].id]), posts)
        )
    for (round_, endpoint), sent in zip(posts, results, strict=True):
        round_.sent[endpoint.id] = sent


def _end(round_: _Round, dead_letters: DeadLetters, settings: DeliverySettings, counts: Counts) -> None:
    """Record the round's attempts, and end it: delivered, due again later, or dead-lettered."""
    deps, lease, event = round_.deps, round_.lease, round_.event
    try:
        now = deps.clock()
        delivered = set(lease.delivered)
        for endpoint_id, sent in round_.sent.items():
            deps.store.add_attempt(event, Attempt(endpoint_id, now, sent.status, sent.error))
            ok = sent.status is not None and 200 <= sent.status < 300
            counts["delivered" if ok else "failed"] += 1
            if ok:
                delivered.add(endpoint_id)
        undelivered = any(endpoint.id not in delivered for endpoint in round_.endpoints)
        next_due = settings.schedule.next_due(lease.rounds + 1, now) if undelivered else None
        if undelivered and next_due is None:
            dead_letters.send(deps.store.merchant, event)
            counts["dead_lettered"] += 1
            logger.warning("event dead-lettered", extra={"event_id": event.id, "rounds": lease.rounds + 1})
        if undelivered:
            age = (now - event.created_at).total_seconds()
            counts["oldest_undelivered_seconds"] = max(counts["oldest_undelivered_seconds"], age)
        deps.store.end_round(lease, frozenset(delivered), next_due)
    except Exception:
        logger.exception("delivery round not recorded", extra={"event_id": event.id})
        counts["errors"] += 1
