"""In-memory implementations of the service's ports (``lambdas.ports``), so that
use-case tests and the stateful model test run in milliseconds.

They keep the adapters' semantics, not their storage: a unit of work checks
every part's condition under one lock and applies all or none, raising
``LostRace`` with what each failed part found, as DynamoDB's
``TransactWriteItems`` with ``ReturnValuesOnConditionCheckFailure`` does.
``tests/test_store_contract.py`` runs the same tests against these and against
the DynamoDB adapters, which is what keeps them honest."""

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from lambdas.adapters.checkpoint_archive import Archived
from lambdas.domain.cards import Card, CardNumber, MaskedCard
from lambdas.domain.chains import Head, chain_of, linked_hash
from lambdas.domain.checkpoints import MAX_SIGNED_BYTES, Checkpoint, pem_of
from lambdas.domain.events import Event, EventType
from lambdas.domain.idempotency import Record, State
from lambdas.domain.merchants import Caller, Merchant, lookup_keys
from lambdas.domain.payments import Action, Entry, Payment, Refund, RefundStatus, Status
from lambdas.domain.rules import RuleSet
from lambdas.domain.timestamps import iso
from lambdas.gateway import Gateway
from lambdas.ports import (
    IDEMPOTENCY_PART,
    Answer,
    ArchiveTaken,
    LostRace,
    MisfiledCheckpoint,
    PendingItem,
    StoredToken,
)
from lambdas.service import PaymentService, Tenancy
from lambdas.use_cases import Dependencies
from lambdas.use_cases.idempotency import IdempotencyKeys
from tests.support.fakes_settlements import FakeImportLedger, FakeSettlementLedger, FakeSettlementRecords
from tests.support.fakes_webhooks import FakeWebhookRecords

READ_LATENCY_SECONDS = 0.0005
Check = Callable[[], tuple[bool, Any]]  # (condition holds, what the part found)


class FakeDatabase:
    """Everything the fakes store, behind one lock (DynamoDB serializes each request the same way)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.ledgers: dict[str, FakeLedger] = {}
        self.records: dict[str, Record] = {}
        self.attempts: dict[str, int] = {}
        self.commits = 0
        self.archive: Archived = {}  # the checkpoints' write-once copy: merchant -> sequence -> checkpoint
        self.settlement_imports = FakeImportLedger()  # the operator's record of the gateway's settlements

    def ledger(self, merchant: str) -> "FakeLedger":
        with self.lock:
            return self.ledgers.setdefault(merchant, FakeLedger())


@dataclass
class FakeLedger:
    """One merchant's tokens, payments, refunds and entries."""

    tokens: dict[str, StoredToken] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    refunds: dict[tuple[str, str], Refund] = field(default_factory=dict)
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    heads: dict[int, Head] = field(default_factory=dict)
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)  # each payment's without its metadata, as stored
    settlements: FakeSettlementLedger = field(default_factory=FakeSettlementLedger)


@dataclass
class FakeUnitOfWork:
    db: FakeDatabase
    parts: list[tuple[str, Check, Callable[[], None]]] = field(default_factory=list)

    def add(self, label: str, check: Check, apply: Callable[[], None]) -> None:
        self.parts.append((label, check, apply))

    def commit(self) -> None:
        with self.db.lock:
            conflicts = {}
            for label, check, _ in self.parts:
                holds, found = check()
                if not holds:
                    conflicts[label] = found
            if conflicts:
                raise LostRace(conflicts)
            for _, _, apply in self.parts:
                apply()
            self.db.commits += 1


def _always() -> tuple[bool, Any]:
    return True, None


class FakeLedgerStore(FakeWebhookRecords, FakeSettlementRecords):
    """One merchant's records, as the DynamoDB store keys them by merchant."""

    def __init__(self, db: FakeDatabase, merchant: str) -> None:
        self.db = db
        self.merchant = merchant
        self.ledger = db.ledger(merchant)

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db)

    def get_token(self, token_id: str, for_payment: str | None = None) -> StoredToken | None:
        return self.ledger.tokens.get(token_id)

    def get_payment(self, payment_id: str, with_metadata: bool = True, to_book: bool = False) -> Payment | None:
        with self.db.lock:
            payment = self.ledger.payments.get(payment_id)
        time.sleep(READ_LATENCY_SECONDS)  # a read takes time, so concurrent requests interleave as they do on AWS
        if payment is None or with_metadata:
            return payment
        return replace(payment, metadata={})

    def get_refund(self, payment_id: str, refund_id: str) -> Refund | None:
        return self.ledger.refunds.get((payment_id, refund_id))

    def entries(self, payment_id: str) -> list[Entry]:
        with self.db.lock:
            return list(self.ledger.entries.get(payment_id, []))

    def pending(self, created_before: datetime) -> Iterator[PendingItem]:
        with self.db.lock:
            payments = [p for p in self.ledger.payments.values() if p.status is Status.PENDING or p.action]
            refunds = [r for r in self.ledger.refunds.values() if r.status is RefundStatus.PENDING]
        for payment in payments:
            if payment.created_at < created_before:
                yield PendingItem(payment.id, payment.action.started_at if payment.action else payment.created_at)
        yield from (PendingItem(r.payment_id, r.created_at, r.id) for r in refunds if r.created_at < created_before)

    def authorizations(self, created_before: datetime) -> Iterator[PendingItem]:
        with self.db.lock:
            payments = [p for p in self.ledger.payments.values() if p.status is Status.REQUIRES_CAPTURE]
        yield from (PendingItem(p.id, p.created_at) for p in payments if not p.action and p.created_at < created_before)

    def add_token(self, uow: FakeUnitOfWork, token_id: str, card: MaskedCard, sealed_card: Any, now: datetime) -> None:
        uow.add(
            "token",
            lambda: (token_id not in self.ledger.tokens, None),
            lambda: self.ledger.tokens.__setitem__(token_id, StoredToken(card, sealed_card)),
        )

    def add_payment(self, uow: FakeUnitOfWork, payment: Payment) -> None:
        uow.add(
            "payment",
            lambda: (payment.id not in self.ledger.payments, None),
            lambda: self.ledger.payments.__setitem__(
                payment.id, replace(payment, amount_refunded=0, amount_reserved=0)
            ),
        )

    def settle_payment(self, uow: FakeUnitOfWork, before: Payment, after: Payment, entries: list[Entry]) -> None:
        def check() -> tuple[bool, Any]:
            current = self.ledger.payments.get(before.id)
            return current is not None and current.status is Status.PENDING, self._plain(current)

        def apply() -> None:
            current = self.ledger.payments[before.id]
            self.ledger.payments[before.id] = replace(
                current,
                status=after.status,
                charge_id=after.charge_id,
                decline_code=after.decline_code,
                amount_captured=after.amount_captured,
                cancellation_reason=after.cancellation_reason,
            )

        uow.add("payment", check, apply)
        self._add_entries(uow, entries)

    def claim_action(self, uow: FakeUnitOfWork, payment: Payment, action: Action) -> None:
        def check() -> tuple[bool, Any]:
            current = self.ledger.payments.get(payment.id)
            holds = current is not None and current.status is Status.REQUIRES_CAPTURE and current.action is None
            return holds, self._plain(current)

        def apply() -> None:
            self.ledger.payments[payment.id] = replace(self.ledger.payments[payment.id], action=action)

        uow.add("payment", check, apply)

    def release_action(self, uow: FakeUnitOfWork, payment: Payment) -> None:
        def check() -> tuple[bool, Any]:
            current = self.ledger.payments.get(payment.id)
            holds = current is not None and current.status is Status.REQUIRES_CAPTURE and current.action is not None
            return holds, self._plain(current)

        def apply() -> None:
            self.ledger.payments[payment.id] = replace(self.ledger.payments[payment.id], action=None)

        uow.add("payment", check, apply)

    def settle_action(self, uow: FakeUnitOfWork, before: Payment, after: Payment, entries: list[Entry]) -> None:
        def check() -> tuple[bool, Any]:
            current = self.ledger.payments.get(before.id)
            holds = current is not None and current.status is Status.REQUIRES_CAPTURE and current.action is not None
            return holds, self._plain(current)

        def apply() -> None:
            current = self.ledger.payments[before.id]
            self.ledger.payments[before.id] = replace(
                current,
                status=after.status,
                amount_captured=after.amount_captured,
                cancellation_reason=after.cancellation_reason,
                action=None,
            )

        uow.add("payment", check, apply)
        self._add_entries(uow, entries)

    def reserve_refund(self, uow: FakeUnitOfWork, payment: Payment, refund: Refund) -> None:
        def check() -> tuple[bool, Any]:
            current = self.ledger.payments.get(payment.id)
            holds = (
                current is not None
                and current.status is Status.SUCCEEDED
                and current.refundable_amount >= refund.amount
            )
            return holds, self._plain(current)

        def apply() -> None:
            current = self.ledger.payments[payment.id]
            self.ledger.payments[payment.id] = replace(current, amount_reserved=current.amount_reserved + refund.amount)

        uow.add("payment", check, apply)
        uow.add(
            "refund",
            lambda: ((refund.payment_id, refund.id) not in self.ledger.refunds, None),
            lambda: self.ledger.refunds.__setitem__((refund.payment_id, refund.id), refund),
        )

    def complete_refund(self, uow: FakeUnitOfWork, refund: Refund, entries: list[Entry]) -> None:
        self._leave_pending(uow, refund, refunded=refund.amount, released=0)
        self._add_entries(uow, entries)

    def cancel_refund(self, uow: FakeUnitOfWork, refund: Refund) -> None:
        self._leave_pending(uow, refund, refunded=0, released=refund.amount)

    def _leave_pending(self, uow: FakeUnitOfWork, refund: Refund, refunded: int, released: int) -> None:
        key = (refund.payment_id, refund.id)

        def check() -> tuple[bool, Any]:
            current = self.ledger.refunds.get(key)
            return current is not None and current.status is RefundStatus.PENDING, current

        def apply() -> None:
            self.ledger.refunds[key] = refund
            payment = self.ledger.payments[refund.payment_id]
            self.ledger.payments[refund.payment_id] = replace(
                payment,
                amount_refunded=payment.amount_refunded + refunded,
                amount_reserved=payment.amount_reserved - refund.amount,
            )

        uow.add("refund", check, apply)

    def _add_entries(self, uow: FakeUnitOfWork, entries: list[Entry]) -> None:
        """At the end of the payment's chain as it stands at commit (the DynamoDB store retries until it is)."""

        def apply() -> None:
            chain = chain_of(entries[0].payment_id)
            placed, self.ledger.heads[chain] = self.ledger.heads.get(chain, Head(chain)).extend(self.merchant, entries)
            for entry in placed:
                self.ledger.entries.setdefault(entry.payment_id, []).append(entry)

        if entries:
            uow.add("entry", _always, apply)

    def list_payments(self, limit: int, starting_after: Payment | None) -> tuple[list[Payment], bool]:
        def place(payment: Payment) -> tuple[str, str]:
            return iso(payment.created_at), payment.id

        with self.db.lock:
            newest_first = sorted(self.ledger.payments.values(), key=place, reverse=True)
        if starting_after is not None:
            newest_first = [p for p in newest_first if place(p) < place(starting_after)]
        return newest_first[:limit], len(newest_first) > limit

    def heads(self) -> list[Head]:
        with self.db.lock:
            return list(self.ledger.heads.values())

    def hash_at(self, chain: int, sequence: int) -> str | None:
        with self.db.lock:
            entries = [e for kept in self.ledger.entries.values() for e in kept]
        near = {e.sequence: e for e in entries if e.chain == chain and e.sequence in (sequence - 1, sequence)}
        return linked_hash(self.merchant, near, sequence)

    def _filed(self, n: int) -> Checkpoint:
        """The checkpoint kept under ``n``, refused as the DynamoDB store refuses one under another's key."""
        checkpoint = self.ledger.checkpoints[n]
        if checkpoint.sequence != n:
            raise MisfiledCheckpoint(f"CHECKPOINT#{n:012d}", checkpoint.sequence)
        return checkpoint

    def latest_checkpoint(self) -> Checkpoint | None:
        with self.db.lock:
            return self._filed(max(self.ledger.checkpoints)) if self.ledger.checkpoints else None

    def checkpoints(self) -> Iterator[Checkpoint]:
        with self.db.lock:
            return iter([self._filed(n) for n in sorted(self.ledger.checkpoints)])

    def checkpoint(self, sequence: int) -> Checkpoint | None:
        with self.db.lock:
            return self._filed(sequence) if sequence in self.ledger.checkpoints else None

    def list_checkpoints(self, limit: int, before: int | None) -> tuple[list[Checkpoint], bool]:
        with self.db.lock:
            newest_first = [self._filed(n) for n in sorted(self.ledger.checkpoints, reverse=True)
                            if before is None or n < before]  # fmt: skip
        return newest_first[:limit], len(newest_first) > limit

    def add_checkpoint(self, uow: FakeUnitOfWork, checkpoint: Checkpoint) -> None:
        def check() -> tuple[bool, Any]:
            taken = self.ledger.checkpoints.get(checkpoint.sequence)
            return taken is None, taken

        def apply() -> None:
            self.ledger.checkpoints[checkpoint.sequence] = checkpoint

        uow.add("checkpoint", check, apply)

    def add_event(self, uow: FakeUnitOfWork, event: Event) -> None:
        # the payment's metadata is attached from the payment on read (a settlement's event has no payment)
        stored = replace(event, payment=replace(event.payment, metadata={})) if event.payment else event
        uow.add(
            "event",
            lambda: (event.id not in self.ledger.events, None),
            lambda: self.ledger.events.__setitem__(event.id, stored),
        )

    def get_event(self, event_id: str) -> Event | None:
        with self.db.lock:
            event = self.ledger.events.get(event_id)
        return self._with_metadata(event) if event else None

    def list_events(
        self, limit: int, starting_after: Event | None, event_type: EventType | None
    ) -> tuple[list[Event], bool]:
        def place(event: Event) -> tuple[str, str]:
            return iso(event.created_at), event.id

        with self.db.lock:
            newest_first = sorted(self.ledger.events.values(), key=place, reverse=True)
        newest_first = [e for e in newest_first if event_type is None or e.type is event_type]
        if starting_after is not None:
            newest_first = [e for e in newest_first if place(e) < place(starting_after)]
        return [self._with_metadata(e) for e in newest_first[:limit]], len(newest_first) > limit

    def _with_metadata(self, event: Event) -> Event:
        if event.payment is None:
            return event
        with self.db.lock:
            payment = self.ledger.payments.get(event.payment.id)
        return replace(event, payment=replace(event.payment, metadata=dict(payment.metadata) if payment else {}))

    @staticmethod
    def _plain(payment: Payment | None) -> Payment | None:
        """A payment as a failed condition reports it: without metadata (DynamoDB returns it sealed)."""
        return replace(payment, metadata={}) if payment else None


class FakeIdempotencyStore:
    """Idempotency records by id, with the DynamoDB store's conditions."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db

    def claim(self, uow: FakeUnitOfWork, record: Record, answer: Answer | None, now: float) -> None:
        if answer is not None:
            record = replace(record, response_status=answer.status, response_body=json.dumps(answer.body))

        def check() -> tuple[bool, Any]:
            current = self.db.records.get(record.id)
            return current is None or current.expiration < int(now), current

        uow.add(IDEMPOTENCY_PART, check, lambda: self.db.records.__setitem__(record.id, record))

    def get(self, key: str) -> Record | None:
        return self.db.records.get(key)

    def take_over(self, record: Record, in_flight_until: int) -> bool:
        with self.db.lock:
            if self.db.records.get(record.id) != record:
                return False
            self.db.records[record.id] = replace(record, state=State.IN_PROGRESS, in_flight_until=in_flight_until)
        return True

    def complete(self, uow: FakeUnitOfWork, key: str, answer: Answer) -> None:
        def check() -> tuple[bool, Any]:
            current = self.db.records.get(key)
            return current is not None and current.state is State.IN_PROGRESS, current

        def apply() -> None:
            self.db.records[key] = replace(
                self.db.records[key],
                state=State.COMPLETED,
                response_status=answer.status,
                response_body=json.dumps(answer.body),
            )

        uow.add(IDEMPOTENCY_PART, check, apply)

    def answer(self, record: Record) -> Answer:
        return Answer(int(record.response_status or 0), json.loads(record.response_body or "{}"))

    def release(self, key: str) -> None:
        with self.db.lock:
            current = self.db.records.get(key)
            if current is not None and current.state is State.IN_PROGRESS:
                self.db.records[key] = replace(current, state=State.RETRYABLE)

    def forget(self, key: str) -> None:
        with self.db.lock:
            current = self.db.records.get(key)
            if current is not None and current.state is State.IN_PROGRESS:
                del self.db.records[key]

    def require_idle(self, uow: FakeUnitOfWork, key: str, now: float) -> None:
        def check() -> tuple[bool, Any]:
            current = self.db.records.get(key)
            idle = current is None or current.state is not State.IN_PROGRESS or current.in_flight_until < now
            return idle, current

        uow.add(IDEMPOTENCY_PART, check, lambda: None)


class FakeVelocityCounter:
    def __init__(self, db: FakeDatabase, merchant: str) -> None:
        self.db = db
        self.merchant = merchant

    def count(self, uow: FakeUnitOfWork, fingerprint: str, now: datetime, limit: int) -> None:
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        key = f"{self.merchant}#{fingerprint}#{hour:%Y-%m-%dT%H}"
        uow.add(
            "velocity",
            lambda: (self.db.attempts.get(key, 0) < limit, None),
            lambda: self.db.attempts.__setitem__(key, self.db.attempts.get(key, 0) + 1),
        )


@dataclass(frozen=True)
class FakeSealed:
    token_id: str
    card: Card = field(repr=False)


class FakeVault:
    """Fingerprints are HMACs under a key only the fake knows; sealing keeps the card bound to its token."""

    def __init__(self) -> None:
        self._key = b"fake-vault-fingerprint-key"

    def fingerprint(self, number: CardNumber) -> str:
        mac = hmac.new(self._key, number.digits.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def mask(self, card: Card, fingerprint: str) -> MaskedCard:
        return MaskedCard(card.number.brand, card.number.last4, card.exp_month, card.exp_year, fingerprint)

    def seal(self, token_id: str, card: Card) -> FakeSealed:
        return FakeSealed(token_id, replace(card, cvc=None))

    def open(self, token_id: str, sealed: FakeSealed) -> Card:
        if sealed.token_id != token_id:
            raise InvalidTag("sealed for another token")  # as AES-GCM refuses a ciphertext bound to another token
        return sealed.card


class FakeSigner:
    """An ECC_NIST_P256 key held in memory, signing as KMS does (ECDSA_SHA_256, DER)."""

    key_id = "arn:aws:kms:us-east-1:123456789012:key/fake-signing-key"

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def sign(self, message: bytes) -> bytes:
        if len(message) > MAX_SIGNED_BYTES:
            raise ValueError(f"KMS signs at most {MAX_SIGNED_BYTES} bytes of a raw message")
        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))

    def public_key_pem(self) -> str:
        return pem_of(self._key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


class FakeCheckpointArchive:
    """The write-once copy in memory (``FakeDatabase.archive``)."""

    def __init__(self, db: FakeDatabase, merchant: str) -> None:
        self.db = db
        self.merchant = merchant

    def keep(self, checkpoint: Checkpoint) -> None:
        with self.db.lock:
            mine = self.db.archive.setdefault(self.merchant, {})
            if checkpoint.sequence in mine:
                raise ArchiveTaken(checkpoint.sequence)
            mine[checkpoint.sequence] = checkpoint

    def kept(self, sequence: int) -> Checkpoint | None:
        with self.db.lock:
            return self.db.archive.get(self.merchant, {}).get(sequence)


class FakeClock:
    """One clock for the use cases (datetime) and the idempotency protocol (epoch seconds)."""

    def __init__(self, start: datetime = datetime(2026, 11, 27, 12, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class FakeMerchantDirectory:
    """Merchants by the principals and accounts that act for them."""

    def __init__(self, principals: dict[str, Merchant]) -> None:
        self.principals = principals

    def merchant_for(self, caller: Caller) -> Merchant | None:
        for key in lookup_keys(caller):
            if key in self.principals:
                return self.principals[key]
        return None

    def merchants(self) -> list[Merchant]:
        return sorted({m.id: m for m in self.principals.values()}.values(), key=lambda merchant: merchant.id)


MERCHANT = "merchant-a"
# The principals of merchants A and B in every test: requests are signed as A's unless a test says otherwise.
MERCHANT_A = "arn:aws:iam::123456789012:user/local"
MERCHANT_B = "arn:aws:iam::123456789012:role/merchant-b-checkout"


@dataclass
class FakeWorld:
    """One merchant's service wired to fakes, with handles on what the tests inspect; ``other`` serves a
    second merchant from the same database."""

    db: FakeDatabase
    clock: FakeClock
    deps: Dependencies
    service: PaymentService
    ledger: FakeLedger
    tenancy: Tenancy

    def other(self) -> PaymentService:
        """Merchant B's service."""
        served = self.tenancy.service_for(Caller(MERCHANT_B, "123456789012"))
        assert served is not None
        return served[1]


def fake_world(gateway: Gateway, rules: RuleSet = RuleSet(), clock: FakeClock | None = None) -> FakeWorld:
    db, clock = FakeDatabase(), clock or FakeClock()
    idempotency, vault, signer = IdempotencyKeys(FakeIdempotencyStore(db), clock.epoch), FakeVault(), FakeSigner()

    def dependencies(merchant: Merchant) -> Dependencies:
        return Dependencies(
            store=FakeLedgerStore(db, merchant.id),
            idempotency=idempotency,
            velocity=FakeVelocityCounter(db, merchant.id),
            vault=vault,
            gateway=gateway,
            rules=merchant.rules,
            signer=signer,
            archive=FakeCheckpointArchive(db, merchant.id),
            clock=clock,
        )

    merchant = Merchant(MERCHANT, rules)
    directory = FakeMerchantDirectory({MERCHANT_A: merchant, MERCHANT_B: Merchant("merchant-b", rules)})
    deps = dependencies(merchant)
    tenancy = Tenancy(directory, dependencies)
    return FakeWorld(db, clock, deps, PaymentService(deps), db.ledger(MERCHANT), tenancy)
