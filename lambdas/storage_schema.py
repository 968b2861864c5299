"""Key schema of the service's DynamoDB tables: the one place the infrastructure,
the Lambda code and the tests read it from.

The ledger table is single-table: every item's partition key starts with the
kind of record it holds, then names the merchant it belongs to. IAM grants are scoped by those prefixes
(``dynamodb:LeadingKeys``), which is how ledger entries stay append-only: no role
may update or delete an item whose partition key starts with ``LEDGER#``.

Items are written with plain Python values; ``to_item`` and ``from_item`` turn them into DynamoDB's typed
attribute values and back, for the adapters and for the items the stack writes itself (the merchants').
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from lambdas.domain.merchants import principal_key

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


class Partition(str, Enum):
    """Partition-key prefixes of the ledger table, one per kind of record."""

    TOKEN = "TOKEN#"  # a vaulted card
    PAYMENT = "PAYMENT#"  # a payment and its refunds
    LEDGER = "LEDGER#"  # the double-entry ledger entries of one payment
    CHAIN = "CHAIN#"  # the heads of a merchant's hash chains (lambdas.domain.chains), updated with every entry
    CHECKPOINT = "CHECKPOINT#"  # a merchant's signed checkpoints of those chains (lambdas.domain.checkpoints), only put
    EVENT = "EVENT#"  # an event (lambdas.domain.events) and its delivery attempts; expire after 30 days
    ENDPOINT = "ENDPOINT#"  # a merchant's webhook endpoints, their secrets sealed
    SETTLEMENT = "SETTLEMENT#"  # a merchant's expected movements, its shares of settlements and their mismatches
    GATEWAY = "GATEWAY#"  # the gateway's settlements as imported: the operator's, no merchant's (its name in its place)

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


# Payments and refunds still pending, by time (a sparse index): reconciliation.
BY_STATUS = Index(name="by_status", partition_key="status_pk", sort_key="created_at")
# A merchant's payments by creation (time, then id): GET /payments, newest first. Keys only, so only a payment's
# creation writes the index (its ceiling: one partition's 1,000 writes/s per merchant).
BY_MERCHANT = Index(name="by_merchant", partition_key="merchant_pk", sort_key="created_key", projection="KEYS_ONLY")
# Ledger entries by chain, in sequence (zero-padded): what `make verify` walks, and the checkpoint function queries.
BY_CHAIN = Index(name="by_chain", partition_key="chain_pk", sort_key="chain_seq")
# Events still to deliver, by when their next attempt is due (a sparse index, one partition per merchant): what the
# delivery function queries. An event enters it when it is written, and leaves it once every endpoint has it.
BY_DUE = Index(name="by_due", partition_key="due_pk", sort_key="due_at")

LEDGER = TableSchema(
    name="ledger",
    partition_key="pk",
    sort_key="sk",
    indexes=(BY_STATUS, BY_MERCHANT, BY_CHAIN, BY_DUE),
    ttl_attribute="expires_at",  # only events and their delivery attempts carry it: ledger records never expire
)

# The layout Powertools' DynamoDB idempotency persistence layer expects by default.
IDEMPOTENCY = TableSchema(name="idempotency", partition_key="id", ttl_attribute="expiration")

# Who acts for which merchant, and each merchant's rules: items Terraform writes from the configuration
# (``stacks.ledger_table.MerchantsTable``), read by the functions (``lambdas.adapters.merchants``).
MERCHANTS = TableSchema(name="merchants", partition_key="pk")


class MerchantRecord(str, Enum):
    """Partition-key prefixes of the merchants table."""

    PRINCIPAL = "PRINCIPAL#"  # a principal (its acting ARN) or an account id -> the merchant it acts for
    MERCHANT = "MERCHANT#"  # a merchant and its rules

    def key(self, identifier: str) -> str:
        return f"{self.value}{identifier}"


def merchant_items(
    merchant_id: str, principals: Iterable[str], rules: dict[str, Any], api_key_id: str | None = None
) -> list[dict[str, Any]]:
    """The merchants table's items for one merchant: its rules (``RuleSet.from_config``'s shape) and the id of its
    API key (the only key its signers' requests may carry), and one item per principal (a role or user ARN, or an
    account id) acting for it. Plain values: ``to_item`` makes them DynamoDB's."""
    pk = MERCHANTS.partition_key
    merchant = {pk: MerchantRecord.MERCHANT.key(merchant_id), "id": merchant_id, "rules": json.dumps(rules)}
    items = [merchant | ({"api_key_id": api_key_id} if api_key_id is not None else {})]
    items += [{pk: MerchantRecord.PRINCIPAL.key(principal_key(p)), "merchant": merchant_id} for p in principals]
    return items
