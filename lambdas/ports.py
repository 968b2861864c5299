"""The small interfaces the use cases are written against (Cosmic Python's ports).

DynamoDB and KMS implement them in ``lambdas.adapters``; ``tests.fakes``
implements them in memory with the same semantics, and one contract test
suite runs against both.

Writes go through a unit of work: the use case asks each store to add its
parts, then commits them all at once. A commit either applies every part or
none and raises ``LostRace`` naming the parts whose condition failed, with
what each found in their place (decoded by the store that made the part).
The stores are generic in their unit of work: each adapter family (DynamoDB,
the in-memory fakes) adds parts of its own kind to a unit of work of its own."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from lambdas.domain.cards import Card, CardNumber, MaskedCard
from lambdas.domain.chains import Head
from lambdas.domain.checkpoints import Checkpoint
from lambdas.domain.merchants import Caller, Merchant
from lambdas.domain.payments import Entry, Payment, Refund


@dataclass(frozen=True)
class Answer:
    """A response the use case decided on: status and contract body."""

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


@dataclass(frozen=True)
class Fresh:
    """The key was free: the request runs."""


@dataclass(frozen=True)
class Replay:
    """The key completed before with the same body: answer what was answered."""

    answer: Answer


@dataclass(frozen=True)
class Resume:
    """An earlier attempt with this key ended without an answer (5xx, or abandoned): settle its object."""

    resource_id: str


Begun = Fresh | Replay | Resume


class IdempotencyStore(Protocol[UoW_contra]):
    def begin(self, uow: UoW_contra, key: str, digest: str, resource_id: str, answer: Answer | None = None) -> Begun:
        """Claim ``key`` together with ``uow``'s parts and commit them.

        With ``answer`` the record is complete at once (the request makes no outside call). Raises
        ``IdempotencyConflict`` (409 while the key is in flight, 422 for another body) and ``LostRace`` when
        another part of ``uow`` failed. An expired record is replaced at once."""

    def resume_or_replay(self, key: str, digest: str) -> Replay | Resume | None:
        """Without a new claim: what ``begin`` would find for ``key`` (None: no live record). A completed record
        is replayed, a released or abandoned one taken over to resume; 409/422 raised as in ``begin``."""

    def complete(self, uow: UoW_contra, key: str, answer: Answer) -> None:
        """Part storing the answer to replay (sealed when it carries metadata)."""

    def release(self, key: str) -> None:
        """After a 5xx: nothing is answered, a retry resumes the same object."""

    def forget(self, key: str) -> None:
        """After a 4xx found once the key was claimed: nothing is kept."""

    def require_idle(self, uow: UoW_contra, key: str) -> None:
        """Part that holds only while no request is in flight with ``key`` (label ``"idempotency"``)."""


# -- the ledger store -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredToken:
    card: MaskedCard
    sealed_card: Any  # opened only by the vault


@dataclass(frozen=True)
class PendingItem:
    """A payment, or a refund of it, waiting for the gateway's answer."""

    payment_id: str
    created_at: datetime  # the payment's, or the refund's
    refund_id: str | None = None


class LedgerStore(Protocol[UoW]):
    merchant: str  # whose records it reads and writes, and no other's

    def unit_of_work(self) -> UoW: ...

    def get_token(self, token_id: str, for_payment: str | None = None) -> StoredToken | None:
        """The token; ``for_payment``: the payment it is read to charge, whose recording the store may prepare
        in the same round trip (the DynamoDB store reads its chain's head)."""

    def get_payment(self, payment_id: str, with_metadata: bool = True) -> Payment | None: ...

    def get_refund(self, payment_id: str, refund_id: str) -> Refund | None: ...

    def entries(self, payment_id: str) -> list[Entry]: ...

    def list_payments(self, limit: int, starting_after: Payment | None) -> tuple[list[Payment], bool]:
        """Up to ``limit`` of the merchant's payments, newest first, after ``starting_after``; whether more follow."""

    def heads(self) -> list[Head]:
        """The head of every chain with entries (lambdas.domain.chains), read together."""

    def hash_at(self, chain: int, sequence: int) -> str | None:
        """The hash the entry at ``sequence`` of ``chain`` proves: recomputed from its content and the stored hash
        of the entry before it (``lambdas.domain.chains.link``), whatever hash attribute it stores (None: no entry
        there; two there: either's)."""

    def pending(self, created_before: datetime) -> Iterator[PendingItem]:
        """Every pending payment and refund created before then, page by page."""

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest signed checkpoint (None: none yet)."""

    def checkpoints(self) -> Iterator[Checkpoint]:
        """Every checkpoint, oldest first, page by page."""

    def checkpoint(self, sequence: int) -> Checkpoint | None:
        """The checkpoint numbered ``sequence`` (None: none)."""

    def list_checkpoints(self, limit: int, before: int | None) -> tuple[list[Checkpoint], bool]:
        """Up to ``limit`` checkpoints, newest first, numbered below ``before``; whether more follow."""

    def add_checkpoint(self, uow: UoW, checkpoint: Checkpoint) -> None:
        """Part putting ``checkpoint``, only while its sequence is free (label ``"checkpoint"``)."""

    def add_token(self, uow: UoW, token_id: str, card: MaskedCard, sealed_card: Any, now: datetime) -> None: ...

    def add_payment(self, uow: UoW, payment: Payment) -> None:
        """Part (label ``"payment"``); metadata is sealed by the store."""

    def settle_payment(self, uow: UoW, before: Payment, after: Payment, entries: list[Entry]) -> None:
        """Parts moving a pending payment to ``after`` (only from pending, label ``"payment"``) with its entries."""

    def reserve_refund(self, uow: UoW, payment: Payment, refund: Refund) -> None:
        """Parts holding the refund's amount on the payment, only while that much is left (label ``"payment"``)."""

    def complete_refund(self, uow: UoW, refund: Refund, entries: list[Entry]) -> None:
        """Parts moving a pending refund to succeeded (only from pending, label ``"refund"``) with its entries."""

    def cancel_refund(self, uow: UoW, refund: Refund) -> None:
        """Parts moving a pending refund to failed (label ``"refund"``), releasing its reservation."""


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
