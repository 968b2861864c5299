"""Key schema of the service's DynamoDB tables: the one place the infrastructure,
the Lambda code and the tests read it from.

The ledger table is single-table: every item's partition key starts with the
kind of record it holds, then names the merchant it belongs to. IAM grants are scoped by those prefixes
(``dynamodb:LeadingKeys``), which is how ledger entries stay append-only: no role
may update or delete an item whose partition key starts with ``LEDGER#``.
"""

from dataclasses import dataclass
from enum import Enum


class Partition(str, Enum):
    """Partition-key prefixes of the ledger table, one per kind of record."""

    TOKEN = "TOKEN#"  # a vaulted card
    PAYMENT = "PAYMENT#"  # a payment and its refunds
    LEDGER = "LEDGER#"  # the double-entry ledger entries of one payment
    CHAIN = "CHAIN#"  # the heads of a merchant's hash chains (lambdas.domain.chains), updated with every entry
    CHECKPOINT = "CHECKPOINT#"  # a merchant's signed checkpoints of those chains (lambdas.domain.checkpoints), only put

    def key(self, merchant: str, identifier: str) -> str:
        """The partition key of ``merchant``'s record: no read can reach another merchant's item."""
        return f"{self.value}{merchant}#{identifier}"


def _key_schema(partition_key: str, sort_key: str | None) -> list[dict[str, str]]:
    keys = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    if sort_key:
        keys.append({"AttributeName": sort_key, "KeyType": "RANGE"})
    return keys


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str
    projection: str = "ALL"  # or "KEYS_ONLY": an update to an item's other attributes then writes no index item

    @property
    def key_schema(self) -> list[dict[str, str]]:
        """The key in the DynamoDB API's ``KeySchema`` shape."""
        return _key_schema(self.partition_key, self.sort_key)


@dataclass(frozen=True)
class TableSchema:
    """String-typed hash/range keys, global secondary indexes and the TTL attribute (None: items never expire)."""

    name: str
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None

    @property
    def key_attributes(self) -> tuple[str, ...]:
        keys = [self.partition_key, self.sort_key]
        for index in self.indexes:
            keys += [index.partition_key, index.sort_key]
        return tuple(dict.fromkeys(key for key in keys if key))

    @property
    def key_schema(self) -> list[dict[str, str]]:
        """The key in the DynamoDB API's ``KeySchema`` shape."""
        return _key_schema(self.partition_key, self.sort_key)


LEDGER = TableSchema(
    name="ledger",
    partition_key="pk",
    sort_key="sk",
    indexes=(
        # Payments and refunds still pending, by time (a sparse index): reconciliation.
        Index(name="by_status", partition_key="status_pk", sort_key="created_at"),
        # A merchant's payments by creation (time, then id): GET /payments, newest first. Keys only, so only a
        # payment's creation writes the index (its ceiling: one partition's 1,000 writes/s per merchant).
        Index(name="by_merchant", partition_key="merchant_pk", sort_key="created_key", projection="KEYS_ONLY"),
        # Ledger entries by chain, in sequence (zero-padded): what `make verify` walks.
        Index(name="by_chain", partition_key="chain_pk", sort_key="chain_seq"),
    ),
    ttl_attribute=None,  # ledger records are never deleted, so nothing in the table expires
)

# The layout Powertools' DynamoDB idempotency persistence layer expects by default.
IDEMPOTENCY = TableSchema(name="idempotency", partition_key="id", ttl_attribute="expiration")

# Who acts for which merchant, and each merchant's rules: items Terraform writes from the configuration
# (``stacks.merchants``), read by the functions (``lambdas.adapters.merchants``).
MERCHANTS = TableSchema(name="merchants", partition_key="pk")


class MerchantRecord(str, Enum):
    """Partition-key prefixes of the merchants table."""

    PRINCIPAL = "PRINCIPAL#"  # a principal (its acting ARN) or an account id -> the merchant it acts for
    MERCHANT = "MERCHANT#"  # a merchant and its rules

    def key(self, identifier: str) -> str:
        return f"{self.value}{identifier}"
