"""The idempotency protocol, over the records an ``IdempotencyStore`` keeps (``lambdas.ports``).

A key is claimed by a conditional put in the same unit of work as the request's first write, and a lost claim
returns the record it met (no separate read) to decide between a replay, a resume, a 409 and a 422
(``lambdas.domain.idempotency``). The answer is stored in the same unit of work as the request's last write. 5xx
outcomes are not stored: the record is released (kept with its object's id, marked retryable) so a retry resumes
that object instead of starting a second one. An expired record is replaced at once; the table's TTL only tidies
up."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from lambdas.domain.idempotency import IN_FLIGHT_SECONDS, RETENTION_SECONDS, Record, State, key_in_use, must_reclaim
from lambdas.ports import IDEMPOTENCY_PART, Answer, IdempotencyStore, LostRace, UoW_contra

Result = TypeVar("Result")


@dataclass(frozen=True)
class Fresh:
    """The key was free: the request runs."""


@dataclass(frozen=True)
class Replay:
    """The key completed before with the same body: answer what was answered, as it was sent."""

    answer: Answer


@dataclass(frozen=True)
class Resume:
    """An earlier attempt with this key ended without an answer (5xx, or abandoned): settle its object."""

    resource_id: str


Begun = Fresh | Replay | Resume


@dataclass(frozen=True)
class Keyed(Generic[Result]):
    """A request made with an idempotency key: its record's id, and the answer the edge sends for a result, which
    is stored with the result so that a replay sends it again byte for byte."""

    key: str
    answer: Callable[[Result], Answer]


class IdempotencyKeys(Generic[UoW_contra]):
    """Claims, replays, resumes and completes keys; ``clock`` gives epoch seconds."""

    def __init__(self, store: IdempotencyStore[UoW_contra], clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def begin(self, uow: UoW_contra, key: str, digest: str, resource_id: str, answer: Answer | None = None) -> Begun:
        """Claim ``key`` together with ``uow``'s parts and commit them.

        With ``answer`` the record is complete at once (the request makes no outside call). Raises
        ``IdempotencyConflict`` (409 while the key is in flight, 422 for another body) and ``LostRace`` when
        another part of ``uow`` failed."""
        now = self.clock()
        if answer is None:
            state, in_flight_until = State.IN_PROGRESS, int(now + IN_FLIGHT_SECONDS)
        else:
            state, in_flight_until = State.COMPLETED, int(now)
        record = Record(key, state, digest, resource_id, in_flight_until, int(now + RETENTION_SECONDS))
        self.store.claim(uow, record, answer, now)
        try:
            uow.commit()
        except LostRace as race:
            if IDEMPOTENCY_PART not in race.conflicts:
                raise
            return self._after_lost_claim(race.conflicts[IDEMPOTENCY_PART], digest)
        return Fresh()

    def resume_or_replay(self, key: str, digest: str) -> Replay | Resume | None:
        """Without a new claim: what ``begin`` would find for ``key`` (None: no live record)."""
        record = self.store.get(key)
        if record is None or record.expiration < self.clock():
            return None
        return self._after_lost_claim(record, digest)

    def _after_lost_claim(self, record: Record | None, digest: str) -> Replay | Resume:
        if record is None:
            raise key_in_use()  # taken and gone again in between: the other request is the one to answer
        now = self.clock()
        if not must_reclaim(record, digest, now):
            stored = self.store.answer(record)
            return Replay(Answer(stored.status, stored.body, replayed=True))
        if not self.store.take_over(record, int(now + IN_FLIGHT_SECONDS)):
            raise key_in_use()  # another retry took it over first
        return Resume(record.resource_id)

    def complete(self, uow: UoW_contra, key: str, answer: Answer) -> None:
        """Part storing the answer to replay."""
        self.store.complete(uow, key, answer)

    def release(self, key: str) -> None:
        """After a 5xx: nothing is answered, a retry resumes the same object."""
        self.store.release(key)

    def forget(self, key: str) -> None:
        """After a 4xx found once the key was claimed: nothing is kept."""
        self.store.forget(key)

    def require_idle(self, uow: UoW_contra, key: str) -> None:
        """Part that holds only while no request is in flight with ``key``."""
        self.store.require_idle(uow, key, self.clock())
