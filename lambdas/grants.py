"""What each function may do to the service's resources, beside the routes it serves (``lambdas.routes``): the stack
turns each grant into IAM and key policy statements (``stacks.service_functions``), and nothing else does.

A grant names a resource, one of its uses (the resource construct's ``grant_<use>``), and what the use is limited
to: the encryption purposes of a key, the partitions of the ledger table, and an index."""

from dataclasses import dataclass
from enum import Enum

from lambdas.encryption_context import Purpose
from lambdas.routes import Function
from lambdas.storage_schema import BY_CHAIN, Index, Partition


class Resource(str, Enum):
    VAULT_KEY = "vault_key"  # cards, payment metadata, the gateway secret, the tables
    FINGERPRINT_KEY = "fingerprint_key"  # keyed card fingerprints (HMAC)
    SIGNING_KEY = "signing_key"  # the ledger's signed checkpoints
    LEDGER = "ledger"
    IDEMPOTENCY = "idempotency"
    MERCHANTS = "merchants"
    GATEWAY_SECRET = "gateway_secret"
    CHECKPOINT_ARCHIVE = "checkpoint_archive"  # the checkpoints' write-once bucket
    WEBHOOK_DEAD_LETTERS = "webhook_dead_letters"  # events never delivered to a webhook endpoint


class Use(str, Enum):
    ENCRYPT = "encrypt"  # envelope encryption for the grant's purposes
    DECRYPT = "decrypt"  # of data encrypted for the grant's purposes
    MAC = "mac"
    SIGN = "sign"
    PUBLIC_KEY = "public_key"
    READ = "read"  # a whole table, its indexes too
    READ_PARTITIONS = "read_partitions"  # the grant's partitions, no index
    READ_TOGETHER = "read_together"  # the grant's partitions, in one BatchGetItem
    QUERY_INDEX = "query_index"  # the grant's index, within its partitions
    APPEND = "append"  # new items in the grant's partitions
    UPDATE = "update"  # items in the grant's partitions
    READ_WRITE = "read_write"
    CONDITION_CHECK = "condition_check"
    LOOKUP = "lookup"  # one item by key
    LIST = "list"  # every item
    KEEP = "keep"  # write once
    SEND = "send"  # messages onto a queue


@dataclass(frozen=True)
class Grant:
    resource: Resource
    use: Use
    purposes: tuple[Purpose, ...] = ()
    partitions: tuple[Partition, ...] = ()
    index: Index | None = None


# A request under an idempotency key: who the caller acts for (before anything else), and the key's record.
_IDEMPOTENT_REQUEST = (Grant(Resource.MERCHANTS, Use.LOOKUP), Grant(Resource.IDEMPOTENCY, Use.READ_WRITE))
# A payment or refund booked: its item, its ledger entries and its event added, its state and its chain's head moved.
_BOOKS_MONEY = (
    Grant(Resource.LEDGER, Use.APPEND, partitions=(Partition.PAYMENT, Partition.LEDGER, Partition.EVENT)),
    Grant(Resource.LEDGER, Use.UPDATE, partitions=(Partition.PAYMENT, Partition.CHAIN)),
)

# Each function's grants, in the order its role's policy lists them.
GRANTS: dict[Function, tuple[Grant, ...]] = {
    Function.TOKENIZE: (
        Grant(Resource.VAULT_KEY, Use.ENCRYPT, purposes=(Purpose.CARD,)),
        Grant(Resource.FINGERPRINT_KEY, Use.MAC),
        Grant(Resource.LEDGER, Use.APPEND, partitions=(Partition.TOKEN,)),
        *_IDEMPOTENT_REQUEST,
    ),
    Function.CHARGE: (
        # payment metadata, and the stored answers that carry it
        Grant(Resource.VAULT_KEY, Use.ENCRYPT, purposes=(Purpose.METADATA,)),
        # vaulted cards; metadata, and replayed answers
        Grant(Resource.VAULT_KEY, Use.DECRYPT, purposes=(Purpose.CARD, Purpose.METADATA)),
        Grant(Resource.FINGERPRINT_KEY, Use.MAC),  # cards sent inline
        Grant(Resource.LEDGER, Use.READ),
        # a token with its payment's head
        Grant(Resource.LEDGER, Use.READ_TOGETHER, partitions=(Partition.TOKEN, Partition.CHAIN)),
        *_BOOKS_MONEY,
        *_IDEMPOTENT_REQUEST,
        Grant(Resource.GATEWAY_SECRET, Use.READ),
    ),
    Function.REFUND: (
        Grant(Resource.LEDGER, Use.READ),
        *_BOOKS_MONEY,
        *_IDEMPOTENT_REQUEST,
        Grant(Resource.GATEWAY_SECRET, Use.READ),
    ),
    Function.CAPTURE: (
        # payment metadata, in the answers and the stored answers that carry it
        Grant(Resource.VAULT_KEY, Use.ENCRYPT, purposes=(Purpose.METADATA,)),
        Grant(Resource.VAULT_KEY, Use.DECRYPT, purposes=(Purpose.METADATA,)),
        # a payment (again, after a lost race) and a chain's head (again, after it moved)
        Grant(Resource.LEDGER, Use.READ_PARTITIONS, partitions=(Partition.PAYMENT, Partition.CHAIN)),
        # a payment with its chain's head
        Grant(Resource.LEDGER, Use.READ_TOGETHER, partitions=(Partition.PAYMENT, Partition.CHAIN)),
        Grant(Resource.LEDGER, Use.APPEND, partitions=(Partition.LEDGER, Partition.EVENT)),
        Grant(Resource.LEDGER, Use.UPDATE, partitions=(Partition.PAYMENT, Partition.CHAIN)),
        *_IDEMPOTENT_REQUEST,
        Grant(Resource.GATEWAY_SECRET, Use.READ),
    ),
    Function.WEBHOOKS: (
        # endpoints' secrets are sealed here, and opened only by delivery
        Grant(Resource.VAULT_KEY, Use.ENCRYPT, purposes=(Purpose.WEBHOOK_SECRET,)),
        Grant(Resource.LEDGER, Use.READ_PARTITIONS, partitions=(Partition.ENDPOINT,)),
        Grant(Resource.LEDGER, Use.APPEND, partitions=(Partition.ENDPOINT,)),
        # endpoints marked deleted and counted; an event made due again (redelivery)
        Grant(Resource.LEDGER, Use.UPDATE, partitions=(Partition.ENDPOINT, Partition.EVENT)),
        *_IDEMPOTENT_REQUEST,
    ),
    Function.READ: (
        Grant(Resource.LEDGER, Use.READ),
        # a page of events, then their payments' metadata (GET /events); a page of shares (GET /settlements)
        Grant(
            Resource.LEDGER, Use.READ_TOGETHER, partitions=(Partition.EVENT, Partition.PAYMENT, Partition.SETTLEMENT)
        ),
        # payment metadata is returned decrypted; cards never
        Grant(Resource.VAULT_KEY, Use.DECRYPT, purposes=(Purpose.METADATA,)),
        Grant(Resource.SIGNING_KEY, Use.PUBLIC_KEY),
        Grant(Resource.MERCHANTS, Use.LOOKUP),
    ),
    Function.RECONCILE: (
        Grant(Resource.LEDGER, Use.READ),
        # a payment with its chain's head
        Grant(Resource.LEDGER, Use.READ_TOGETHER, partitions=(Partition.PAYMENT, Partition.CHAIN)),
        Grant(Resource.LEDGER, Use.APPEND, partitions=(Partition.LEDGER, Partition.EVENT)),
        Grant(Resource.LEDGER, Use.UPDATE, partitions=(Partition.PAYMENT, Partition.CHAIN)),
        Grant(Resource.MERCHANTS, Use.LIST),
        # a settlement gives up nothing a request still holds
        Grant(Resource.IDEMPOTENCY, Use.CONDITION_CHECK),
        Grant(Resource.GATEWAY_SECRET, Use.READ),
    ),
    Function.DELIVER: (
        # events due (the by_due index), the endpoints, an event and its payment
        Grant(Resource.LEDGER, Use.READ),
        # the event's payment metadata (as GET /events/{id} shows it); the endpoints' secrets, which sign
        Grant(Resource.VAULT_KEY, Use.DECRYPT, purposes=(Purpose.METADATA, Purpose.WEBHOOK_SECRET)),
        # an event leased and its round ended; each attempt kept beside it (never a ledger record)
        Grant(Resource.LEDGER, Use.UPDATE, partitions=(Partition.EVENT,)),
        Grant(Resource.LEDGER, Use.APPEND, partitions=(Partition.EVENT,)),
        Grant(Resource.MERCHANTS, Use.LIST),
        Grant(Resource.WEBHOOK_DEAD_LETTERS, Use.SEND),
    ),
    Function.CHECKPOINT: (
        # the heads, the last checkpoint
        Grant(Resource.LEDGER, Use.READ_PARTITIONS, partitions=(Partition.CHAIN, Partition.CHECKPOINT)),
        # an entry where a checkpoint signed
        Grant(Resource.LEDGER, Use.QUERY_INDEX, partitions=(Partition.CHAIN,), index=BY_CHAIN),
        Grant(Resource.LEDGER, Use.APPEND, partitions=(Partition.CHECKPOINT,)),
        Grant(Resource.SIGNING_KEY, Use.SIGN),
        # the newest checkpoint's signature, checked before building on it
        Grant(Resource.SIGNING_KEY, Use.PUBLIC_KEY),
        Grant(Resource.CHECKPOINT_ARCHIVE, Use.KEEP),
        Grant(Resource.MERCHANTS, Use.LIST),
    ),
    Function.SETTLE: (
        # the heads; a line's payment (never its metadata); the merchants' expected movements, shares and cursors;
        # the operator's record of the imports
        Grant(
            Resource.LEDGER,
            Use.READ_PARTITIONS,
            partitions=(Partition.PAYMENT, Partition.CHAIN, Partition.SETTLEMENT, Partition.GATEWAY),
        ),
        # the expected movements of a page of lines, together
        Grant(Resource.LEDGER, Use.READ_TOGETHER, partitions=(Partition.SETTLEMENT,)),
        # the entries written since the last run, chain by chain
        Grant(Resource.LEDGER, Use.QUERY_INDEX, partitions=(Partition.CHAIN,), index=BY_CHAIN),
        # a line's fee and net entries and its share's event; expected movements, shares' lines, the imports
        Grant(
            Resource.LEDGER,
            Use.APPEND,
            partitions=(Partition.LEDGER, Partition.SETTLEMENT, Partition.GATEWAY, Partition.EVENT),
        ),
        # heads moved with the entries; shares' totals, movements marked settled, cursors; the imports' progress.
        # Payments and refunds are only read: no update of theirs is granted.
        Grant(Resource.LEDGER, Use.UPDATE, partitions=(Partition.CHAIN, Partition.SETTLEMENT, Partition.GATEWAY)),
        Grant(Resource.MERCHANTS, Use.LIST),
        Grant(Resource.GATEWAY_SECRET, Use.READ),
    ),
}
