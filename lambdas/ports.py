"""The small interfaces the use cases are written against (Cosmic Python's ports).

DynamoDB and KMS implement them in ``lambdas.adapters``; ``tests.support.fakes``
implements them in memory with the same semantics, and one contract test
suite runs against both.

Writes go through a unit of work: the use case asks each store to add its
parts, then commits them all at once. A commit either applies every part or
none and raises ``LostRace`` naming the parts whose condition failed, with
what each found in their place (decoded by the store that made the part).
The stores are generic in their unit of work: each adapter family (DynamoDB,
the in-memory fakes) adds parts of its own kind to a unit of work of its own."""

from __future__ import annotations  # the domain's types, named only here: a function loads those it uses

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from lambdas.domain.cards import Card, CardNumber, MaskedCard
    from lambdas.domain.chains import Head
    from lambdas.domain.checkpoints import Checkpoint
    from lambdas.domain.events import Event, EventType
    from lambdas.domain.idempotency import Record
    from lambdas.domain.merchants import Caller, Merchant
    from lambdas.domain.payments import Action, Entry, Payment, Refund
    from lambdas.domain.settlements import Expected, Mismatch, Settlement, Share, ShareLine
    from lambdas.domain.webhooks import Attempt, Endpoint


@dataclass(frozen=True)
class Answer:
    """An answer as the edge sends it, status and contract body: kept for replays of its idempotency key."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


class LostRace(Exception):
    """A unit of work did not commit because another writer got there first."""

    def __init__(self, conflicts: dict[str, Any]) -> None:
        super().__init__(f"conditions failed: {sorted(conflicts)}")
        self.conflicts = conflicts  # part label -> what the part found (None: nothing)


class Contended(Exception):
    """A unit of work stopped trying: other writers kept its items busy for longer than its retries last, or than
    the request's time lets it wait (giving up must still fit before the function's timeout). Nothing of it was
    written."""


class UnitOfWork(Protocol):
    def commit(self) -> None:
        """Apply every part added, or none (raises ``LostRace``, or ``Contended``)."""


# The kind of unit of work a family of stores adds its parts to: the ledger store also makes them (invariant),
# the other stores only take them (contravariant).
UoW = TypeVar("UoW", bound=UnitOfWork)
UoW_contra = TypeVar("UoW_contra", bound=UnitOfWork, contravariant=True)


# -- idempotency ------------------------------------------------------------------------

IDEMPOTENCY_PART = "idempotency"  # the label of every part an IdempotencyStore adds


class IdempotencyStore(Protocol[UoW_contra]):
    """Where idempotency records are kept: conditional writes and reads, no decisions (the protocol is
    ``lambdas.use_cases.idempotency``). Each part is labelled ``IDEMPOTENCY_PART``; one whose condition fails
    reports the record it met (None: none)."""

    def claim(self, uow: UoW_contra, record: Record, answer: Answer | None, now: float) -> None:
        """Part putting ``record`` (a completed one with ``answer``), only while no record with its id is live at
        ``now`` (none, or an expired one)."""

    def get(self, key: str) -> Record | None:
        """The record of ``key``, read consistently (None: none)."""

    def take_over(self, record: Record, in_flight_until: int) -> bool:
        """Mark ``record`` in progress until ``in_flight_until``, only while it is still as it was read; False when it
        is not."""

    def complete(self, uow: UoW_contra, key: str, answer: Answer) -> None:
        """Part storing ``answer`` in the record, only while it is in progress (sealed when it carries metadata)."""

    def answer(self, record: Record) -> Answer:
        """The answer ``record`` keeps, opened."""

    def release(self, key: str) -> None:
        """Mark the record retryable, only while it is in progress."""

    def forget(self, key: str) -> None:
        """Delete the record, only while it is in progress."""

    def require_idle(self, uow: UoW_contra, key: str, now: float) -> None:
        """Part that holds only while no record of ``key`` is in progress with its in-flight time running at
        ``now``."""


# -- the ledger store -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredToken:
    card: MaskedCard
    sealed_card: Any  # opened only by the vault


@dataclass(frozen=True)
class PendingItem:
    """A payment, a refund of it, or its authorisation's claimed capture or cancel, waiting for the gateway's answer;
    or an authorisation that may have expired."""

    payment_id: str
    created_at: datetime  # the payment's, the refund's, or when the capture or cancel was claimed
    refund_id: str | None = None


class TokenRecords(Protocol[UoW_contra]):
    def get_token(self, token_id: str, for_payment: str | None = None) -> StoredToken | None:
        """The token; ``for_payment``: the payment it is read to charge, whose recording the store may prepare
        in the same round trip (the DynamoDB store reads its chain's head)."""

    def add_token(self, uow: UoW_contra, token_id: str, card: MaskedCard, sealed_card: Any, now: datetime) -> None: ...


class PaymentRecords(Protocol[UoW_contra]):
    """Payments and their refunds; settling one also books its entries (``ChainRecords``)."""

    def get_payment(self, payment_id: str, with_metadata: bool = True, to_book: bool = False) -> Payment | None:
        """The payment; ``to_book``: it is read to book entries next, and the store may prepare them in the same round
        trip (the DynamoDB store reads its chain's head)."""

    def get_refund(self, payment_id: str, refund_id: str) -> Refund | None: ...

    def pending(self, created_before: datetime) -> Iterator[PendingItem]:
        """Every pending payment and refund, and every authorisation with a claimed capture or cancel, created before
        then, page by page."""

    def authorizations(self, created_before: datetime) -> Iterator[PendingItem]:
        """Every authorisation still requiring capture, with no capture or cancel claimed, created before then."""

    def add_payment(self, uow: UoW_contra, payment: Payment) -> None:
        """Part (label ``"payment"``); metadata is sealed by the store."""

    def settle_payment(self, uow: UoW_contra, before: Payment, after: Payment, entries: list[Entry]) -> None:
        """Parts moving a pending payment to ``after`` (only from pending, label ``"payment"``) with its entries."""

    def claim_action(self, uow: UoW_contra, payment: Payment, action: Action) -> None:
        """Part claiming ``action`` on the authorisation, only while it requires capture and has no action claimed
        (label ``"payment"``)."""

    def release_action(self, uow: UoW_contra, payment: Payment) -> None:
        """Part removing the authorisation's claimed action (the gateway refused it), only while it requires capture
        (label ``"payment"``)."""

    def settle_action(self, uow: UoW_contra, before: Payment, after: Payment, entries: list[Entry]) -> None:
        """Parts moving an authorisation with a claimed action to ``after`` (captured or cancelled; only while it
        still requires capture, label ``"payment"``) with its entries."""

    def reserve_refund(self, uow: UoW_contra, payment: Payment, refund: Refund) -> None:
        """Parts holding the refund's amount on the payment, only while that much is left (label ``"payment"``)."""

    def complete_refund(self, uow: UoW_contra, refund: Refund, entries: list[Entry]) -> None:
        """Parts moving a pending refund to succeeded (only from pending, label ``"refund"``) with its entries."""

    def cancel_refund(self, uow: UoW_contra, refund: Refund) -> None:
        """Parts moving a pending refund to failed (label ``"refund"``), releasing its reservation."""


class ChainRecords(Protocol):
    """Ledger entries and the heads of their chains (lambdas.domain.chains)."""

    def entries(self, payment_id: str) -> list[Entry]: ...

    def heads(self) -> list[Head]:
        """The head of every chain with entries, read together."""

    def hash_at(self, chain: int, sequence: int) -> str | None:
        """The hash the entry at ``sequence`` of ``chain`` proves: recomputed from its content and the stored hash
        of the entry before it (``lambdas.domain.chains.link``), whatever hash attribute it stores (None: no entry
        there; two there: either's)."""


class CheckpointRecords(Protocol[UoW_contra]):
    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest signed checkpoint (None: none yet)."""

    def checkpoints(self) -> Iterator[Checkpoint]:
        """Every checkpoint, oldest first, page by page."""

    def checkpoint(self, sequence: int) -> Checkpoint | None:
        """The checkpoint numbered ``sequence`` (None: none)."""

    def list_checkpoints(self, limit: int, before: int | None) -> tuple[list[Checkpoint], bool]:
        """Up to ``limit`` checkpoints, newest first, numbered below ``before``; whether more follow."""

    def add_checkpoint(self, uow: UoW_contra, checkpoint: Checkpoint) -> None:
        """Part putting ``checkpoint``, only while its sequence is free (label ``"checkpoint"``)."""


class EventRecords(Protocol[UoW_contra]):
    """The merchant's events (``lambdas.domain.events``): each is put in the unit of work of the change it tells of."""

    def add_event(self, uow: UoW_contra, event: Event) -> None:
        """Part putting ``event`` (label ``"event"``), due for delivery at once, kept ``EVENT_RETENTION``."""

    def get_event(self, event_id: str) -> Event | None:
        """The event, its payment's metadata attached (None: none)."""

    def list_events(
        self, limit: int, starting_after: Event | None, event_type: EventType | None
    ) -> tuple[list[Event], bool]:
        """Up to ``limit`` events (of ``event_type`` only, when given), newest first, after ``starting_after``,
        their payments' metadata attached; whether more follow."""


@dataclass(frozen=True)
class DueEvent:
    """An event in the delivery index: its id and when its next round of attempts is due (as stored)."""

    event_id: str
    due_at: str


@dataclass(frozen=True)
class Lease:
    """An event taken for one round of attempts: due again at ``due_at`` unless the round ends first."""

    event_id: str
    due_at: str
    delivered: frozenset[str]  # the endpoints that have it already
    rounds: int  # the rounds of attempts that failed before this one


class WebhookRecords(Protocol[UoW_contra]):
    """The merchant's webhook endpoints (their secrets sealed by the store), and the delivery of its events."""

    def add_endpoint(self, uow: UoW_contra, endpoint: Endpoint, secret: str, limit: int) -> None:
        """Part putting ``endpoint`` only while the merchant has fewer than ``limit`` (label ``"endpoints"``)."""

    def delete_endpoint(self, uow: UoW_contra, endpoint: Endpoint) -> None:
        """Part marking ``endpoint`` deleted, only while it is not (label ``"endpoint"``)."""

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint, deleted or not (None: none)."""

    def endpoints(self) -> list[Endpoint]:
        """The endpoints not deleted, oldest first."""

    def endpoint_secret(self, endpoint_id: str) -> str:
        """The endpoint's signing secret, opened."""

    def due_events(self, now: datetime, limit: int) -> list[DueEvent]:
        """Up to ``limit`` events due for delivery at ``now``, the longest due first."""

    def lease(self, due: DueEvent, until: datetime) -> Lease | None:
        """Take the event for a round of attempts, due again ``until``, only while it is as ``due`` found it."""

    def add_attempt(self, event: Event, attempt: Attempt) -> None:
        """Keep one attempt, as long as its event."""

    def end_round(self, lease: Lease, delivered: frozenset[str], next_due: datetime | None) -> bool:
        """End the leased round: ``delivered`` have it, due again at ``next_due`` (None: out of the index), only
        while the lease holds; False when it did not (a redelivery made it due again meanwhile)."""

    def attempts(self, event_id: str) -> list[Attempt]:
        """The event's delivery attempts, oldest first."""

    def make_due(self, event_id: str, now: datetime) -> bool:
        """Make the event due at ``now`` again for every endpoint, its rounds counted afresh; False: no event."""


@dataclass(frozen=True)
class SettlementCursor:
    """How far the settlement import has read each of the merchant's chains (chain -> sequence): up to ``walked`` its
    expected movements are kept, up to ``checked`` they were checked for ``not_settled``. ``version`` counts its
    moves (0: never moved)."""

    walked: dict[int, int]
    checked: dict[int, int]
    version: int = 0


class SettlementRecords(Protocol[UoW_contra]):
    """The merchant's side of settlements (``lambdas.domain.settlements``): the movements its ledger expects the
    gateway to settle, and its share of each settlement with its mismatches. Payments, refunds and entries are only
    read here, and entries only added."""

    def chain_entries(self, chain: int, after: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries of ``chain`` after sequence ``after``, in sequence, stopping before the first gap
        (an entry the chain index does not show yet)."""

    def settlement_cursor(self) -> SettlementCursor:
        """The cursor as stored (empty, version 0: none yet)."""

    def move_settlement_cursor(self, before: SettlementCursor, after: SettlementCursor) -> bool:
        """Store ``after`` as version ``before.version + 1``, only while the stored cursor is still at
        ``before.version``; False when another run moved it first."""

    def add_expected(self, expected: list[Expected]) -> None:
        """Keep each expected movement, unless one with its reference is kept already (that one stays as it is)."""

    def expected(self, references: list[str]) -> dict[str, Expected]:
        """The expected movements kept under ``references`` (those kept), read consistently."""

    def add_share_line(
        self, uow: UoW_contra, settlement: Settlement, line: ShareLine, names: Expected | None, entries: list[Entry]
    ) -> None:
        """Parts recording ``line`` in the merchant's share of ``settlement`` (made when it has none), only while the
        share does not have it (label ``"line"``), and adding it to the share's totals. ``names``: the expected
        movement the line names (None: none). A matched line marks it settled by the line, only while no line settled
        it (label ``"expected"``), with its ``entries`` on their chain; a mismatched one marks it listed by the line
        (the first such line's mark stays), on no condition."""

    def add_not_settled(self, uow: UoW_contra, settlement: Settlement, expected: Expected, mismatch: Mismatch) -> None:
        """Parts recording ``mismatch`` (``not_settled``) of ``expected`` in the merchant's share of ``settlement``
        (made, complete, when it has none), only while no line settled or listed the movement and it was not reported
        before (label ``"expected"``)."""

    def complete_share(self, uow: UoW_contra, share: Share) -> None:
        """Part showing the share (complete), only while it is not (label ``"share"``)."""

    def get_share(self, settlement_id: str) -> Share | None:
        """The merchant's share of the settlement, complete or not, with its mismatches (None: it has none)."""

    def list_shares(self, limit: int, starting_after: Share | None) -> tuple[list[Share], bool]:
        """Up to ``limit`` of the merchant's complete shares, newest settlement first, after ``starting_after``
        (their mismatches not attached, only counted); whether more follow."""


@dataclass(frozen=True)
class SettlementImport:
    """A gateway settlement as the import has it: ``after_line``, the last line imported in order (None: none yet);
    ``done`` once every line was imported and every merchant's share completed; ``unknown``, the operator's
    mismatches (lines whose reference no merchant knows)."""

    settlement: Settlement
    first_seen_at: datetime
    after_line: str | None = None
    done: bool = False
    unknown: tuple[Mismatch, ...] = ()


class SettlementImports(Protocol):
    """The operator's record of the gateway's settlements and their import (no merchant's: the gateway settles
    every merchant's lines together)."""

    def watermark(self) -> int:
        """The ``created`` up to which every settlement is imported in full (0: none yet)."""

    def begin(self, settlement: Settlement, now: datetime) -> SettlementImport:
        """The import of ``settlement``: as kept already, else kept now, first seen at ``now``."""

    def advance(self, settlement_id: str, after_line: str) -> None:
        """Its lines up to ``after_line`` are imported."""

    def add_unknown(self, settlement_id: str, mismatch: Mismatch) -> bool:
        """Keep the operator's mismatch of one line, once per line; False when it was kept before."""

    def finish(self, settlement: Settlement) -> None:
        """Every line imported and every share completed: done."""

    def raise_watermark(self, created: int) -> None:
        """Every settlement created up to ``created`` is imported in full: the watermark moves up to it (never
        down)."""

    def imports(self, created_from: int, created_to: int) -> list[SettlementImport]:
        """The settlements created in ``[created_from, created_to]`` (unix seconds), oldest first, their unknown
        lines attached."""

    def newest_done(self, currency: str) -> Settlement | None:
        """The newest settlement in ``currency`` imported in full (None: none yet)."""


class PaymentListing(Protocol):
    def list_payments(self, limit: int, starting_after: Payment | None) -> tuple[list[Payment], bool]:
        """Up to ``limit`` of the merchant's payments, newest first, after ``starting_after``; whether more follow."""


class LedgerStore(
    TokenRecords[UoW],
    PaymentRecords[UoW],
    ChainRecords,
    CheckpointRecords[UoW],
    PaymentListing,
    EventRecords[UoW],
    WebhookRecords[UoW],
    SettlementRecords[UoW],
    Protocol[UoW],
):
    """One merchant's records in the ledger, every family of them, written through one kind of unit of work."""

    merchant: str  # whose records it reads and writes, and no other's

    def unit_of_work(self) -> UoW: ...


class VelocityCounter(Protocol[UoW_contra]):
    def count(self, uow: UoW_contra, fingerprint: str, now: datetime, limit: int) -> None:
        """Part counting one attempt of the card this UTC hour, only while fewer than ``limit`` were
        counted (label ``"velocity"``)."""


class Vault(Protocol):
    def fingerprint(self, number: CardNumber) -> str: ...

    def mask(self, card: Card, fingerprint: str) -> MaskedCard: ...

    def seal(self, token_id: str, card: Card) -> Any: ...

    def open(self, token_id: str, sealed: Any) -> Card: ...


class ArchiveTaken(Exception):
    """The write-once copy holds that checkpoint already: nothing was written."""


class MisfiledCheckpoint(Exception):
    """A checkpoint item stored under a sort key that is not its own sequence's (only someone with table access puts
    one there): the store serves none such, a checkpoint run builds on none, and `make verify` names it."""

    def __init__(self, sort_key: str, sequence: int) -> None:
        super().__init__(f"checkpoint {sequence} is stored under {sort_key}")
        self.sort_key = sort_key
        self.sequence = sequence


class CheckpointArchive(Protocol):
    """One merchant's checkpoints in write-once storage, beside the ledger table: each kept when it is made (before
    the table has it), never changed or deleted; `make verify` holds the table to it."""

    def keep(self, checkpoint: Checkpoint) -> None:
        """Write ``checkpoint`` only while its sequence is free (raises ``ArchiveTaken``)."""

    def kept(self, sequence: int) -> Checkpoint | None:
        """The checkpoint kept under ``sequence`` (None: none)."""


class Signer(Protocol):
    """The ledger's signing key: it signs checkpoints, and its public key checks them."""

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes:
        """An ``ECDSA_SHA_256`` signature (DER) over ``message``."""

    def public_key_pem(self) -> str: ...


class MerchantDirectory(Protocol):
    def merchant_for(self, caller: Caller) -> Merchant | None:
        """The merchant the caller acts for, or None: a caller acting for no merchant is refused."""

    def merchants(self) -> list[Merchant]:
        """Every merchant, for the scheduled jobs."""


@dataclass(frozen=True)
class Sent:
    """How one webhook request ended: the receiver's status, or what kept it from answering (never its body)."""

    status: int | None = None
    error: str | None = None


class WebhookSender(Protocol):
    def send(self, url: str, body: bytes, headers: dict[str, str]) -> Sent:
        """POST ``body`` to ``url``, its address checked again and the connection pinned to it; no redirect
        followed, the answer's body never read."""


class DeadLetters(Protocol):
    def send(self, merchant: str, event: Event) -> None:
        """Tell the operator of an event that was never delivered (the dead-letter queue): its merchant, id and type,
        not its content (the event stays in the table, to redeliver)."""
