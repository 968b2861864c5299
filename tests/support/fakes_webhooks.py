"""The webhook records in memory (``lambdas.ports.WebhookRecords``), with the DynamoDB adapter's semantics
(``lambdas.adapters.ledger.webhooks``): a part of ``FakeLedgerStore``.

An event is due at its creation until its first round ends (as the outbox puts it in the delivery index when it is
written): its delivery state is kept here, beside the events the outbox keeps."""

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from lambdas.domain.events import Event
from lambdas.domain.timestamps import iso
from lambdas.domain.webhooks import Attempt, Endpoint
from lambdas.ports import DueEvent, Lease, Sent


@dataclass
class DeliveryState:
    due_at: str | None  # None: out of the delivery index
    delivered: frozenset[str] = frozenset()
    rounds: int = 0


@dataclass
class FakeWebhookLedger:
    """One merchant's endpoints, sealed secrets, events' delivery states and attempts."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # endpoint id -> (sealed for, secret)
    deliveries: dict[str, DeliveryState] = field(default_factory=dict)
    attempts: dict[str, list[Attempt]] = field(default_factory=dict)


class FakeWebhookRecords:
    """Mixed into ``FakeLedgerStore``: ``db`` (its lock) and ``merchant`` come from it, and the events from its
    ``list_events``/``get_event``."""

    db: Any
    merchant: str

    def list_events(self, limit: int, starting_after: Any, event_type: Any) -> tuple[list[Event], bool]:
        raise NotImplementedError  # the outbox's part of the store

    @property
    def hooks(self) -> FakeWebhookLedger:
        with self.db.lock:
            if not hasattr(self.db, "webhooks"):
                self.db.webhooks = {}
            ledger: FakeWebhookLedger = self.db.webhooks.setdefault(self.merchant, FakeWebhookLedger())
            return ledger

    def add_endpoint(self, uow: Any, endpoint: Endpoint, secret: str, limit: int) -> None:
        hooks = self.hooks

        def apply() -> None:
            hooks.endpoints[endpoint.id] = endpoint
            hooks.secrets[endpoint.id] = (endpoint.id, secret)

        uow.add("endpoints", lambda: (len(self.endpoints()) < limit, None), apply)

    def delete_endpoint(self, uow: Any, endpoint: Endpoint) -> None:
        hooks = self.hooks

        def check() -> tuple[bool, Any]:
            current = hooks.endpoints.get(endpoint.id)
            return current is not None and not current.deleted, current

        uow.add("endpoint", check, lambda: hooks.endpoints.__setitem__(endpoint.id, replace(endpoint, deleted=True)))

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        with self.db.lock:
            return self.hooks.endpoints.get(endpoint_id)

    def endpoints(self) -> list[Endpoint]:
        with self.db.lock:
            found = [e for e in self.hooks.endpoints.values() if not e.deleted]
        return sorted(found, key=lambda endpoint: (endpoint.created_at, endpoint.id))

    def endpoint_secret(self, endpoint_id: str) -> str:
        sealed_for, secret = self.hooks.secrets[endpoint_id]
        if sealed_for != endpoint_id:
            raise ValueError("sealed for another endpoint")
        return secret

    def _state(self, event: Event) -> DeliveryState:
        return self.hooks.deliveries.setdefault(event.id, DeliveryState(iso(event.created_at)))

    def due_events(self, now: datetime, limit: int) -> list[DueEvent]:
        events, _ = self.list_events(10**9, None, None)
        with self.db.lock:
            states = [(event.id, self._state(event).due_at) for event in events]
        due = sorted((due_at, event_id) for event_id, due_at in states if due_at is not None and due_at <= iso(now))
        return [DueEvent(event_id, due_at) for due_at, event_id in due[:limit]]

    def lease(self, due: DueEvent, until: datetime) -> Lease | None:
        with self.db.lock:
            state = self.hooks.deliveries.get(due.event_id)
            if state is None or state.due_at != due.due_at:
                return None
            state.due_at = iso(until)
            return Lease(due.event_id, state.due_at, state.delivered, state.rounds)

    def add_attempt(self, event: Event, attempt: Attempt) -> None:
        with self.db.lock:
            self.hooks.attempts.setdefault(event.id, []).append(attempt)

    def end_round(self, lease: Lease, delivered: frozenset[str], next_due: datetime | None) -> bool:
        with self.db.lock:
            state = self.hooks.deliveries.get(lease.event_id)
            if state is None or state.due_at != lease.due_at:
                return False
            state.delivered, state.rounds = delivered, lease.rounds + 1
            state.due_at = None if next_due is None else iso(next_due)
            return True

    def attempts(self, event_id: str) -> list[Attempt]:
        with self.db.lock:
            return list(self.hooks.attempts.get(event_id, []))

    def make_due(self, event_id: str, now: datetime) -> bool:
        event = self.get_event(event_id)  # type: ignore[attr-defined]
        if event is None:
            return False
        with self.db.lock:
            self.hooks.deliveries[event_id] = DeliveryState(iso(now))
            return True


class FakeSender:
    """Answers each request with the next of ``answers`` (the last one again when they run out), or with what
    ``by_url`` names for its URL, keeping each request."""

    def __init__(self, *answers: Sent, by_url: dict[str, Sent] | None = None) -> None:
        self.answers = list(answers) or [Sent(200)]
        self.by_url = by_url or {}
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []
        self.lock = threading.Lock()  # a run sends a wave's requests at once

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> Sent:
        with self.lock:
            self.requests.append((url, body, headers))
            if url in self.by_url:
                return self.by_url[url]
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (merchant, event id)

    def send(self, merchant: str, event: Event) -> None:
        self.sent.append((merchant, event.id))
