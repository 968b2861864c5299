"""`python -m tools.chain_records --environment prod`: chains the ledger entries written before hash chains, and
lists the payments written before GET /payments, once, when upgrading a deployment that holds data.

Each merchant's unchained entries are placed, payment by payment (oldest first), at the end of the payment's chain
with the head's update in one transaction, as the service places new ones (a writer that finds the head moved
reads it again): the entries gain ``payment_id``, ``chain``, ``sequence``, ``hash`` and the by_chain index's
attributes, on the condition that they have none yet, so running it again changes nothing. Payments gain the
by_merchant index's attributes. After it, GET /balances sums every entry and `make verify` reaches all of them.

Run it with the operator's credentials (the functions' roles may not update ledger entries), after
tools.adopt_records where the deployment predates merchants. boto3 honours AWS_ENDPOINT_URL (the emulator)."""

import argparse
import json
from collections import Counter
from typing import Any

import boto3

from lambdas.adapters.dynamo import Part, from_item, update
from lambdas.adapters.ledger.chains import entry_of
from lambdas.adapters.ledger.listing import listing_fields
from lambdas.adapters.ledger.payments import PAYMENT_SK
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.adapters.merchants import DynamoMerchantDirectory
from lambdas.domain.chains import chain_of
from lambdas.domain.payments import Entry
from lambdas.domain.timestamps import parse_iso
from lambdas.storage_schema import BY_MERCHANT, LEDGER, Partition

PK, SK = LEDGER.partition_key, LEDGER.sort_key
if SK is None:
    raise TypeError("the ledger's items are keyed by partition and sort key")


class _ChainInPlace:
    """One payment's unchained entries placed at the end of its chain: updated where they are, not put anew."""

    def __init__(self, store: DynamoLedgerStore, keys: list[dict[str, Any]], entries: list[Entry]) -> None:
        self.store, self.keys, self.entries = store, keys, entries

    def parts(self, reread: bool) -> list[Part]:  # every attempt reads the head
        head = self.store.chains.head(chain_of(self.entries[0].payment_id))
        placed, after = head.extend(self.store.merchant, self.entries)
        unchained = "attribute_not_exists(#chain)"
        parts: list[Part] = [
            (
                "entry",
                update(self.store.table, key, self.store.chains.chain_fields(entry), condition=unchained),
                lambda i: i,
            )
            for key, entry in zip(self.keys, placed, strict=True)
        ]
        return [*parts, self.store.chains.head_part(head, after)]


def chain_records(client: Any, table: str, merchant: str) -> Counter[str]:
    store = DynamoLedgerStore(client, table, metadata_cipher=None, merchant=merchant)  # type: ignore[arg-type]

    def is_payment(pk: str, values: dict[str, Any]) -> bool:
        return pk.startswith(Partition.PAYMENT.key(merchant, "")) and values[SK] == PAYMENT_SK

    unchained: dict[str, list[dict[str, Any]]] = {}
    counts: Counter[str] = Counter()
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for values in (from_item(item) for item in page["Items"]):
            pk = str(values[PK])
            if pk.startswith(Partition.LEDGER.key(merchant, "")) and "chain" not in values:
                unchained.setdefault(pk.removeprefix(Partition.LEDGER.key(merchant, "")), []).append(values)
            elif is_payment(pk, values) and BY_MERCHANT.partition_key not in values:
                payment_id = pk.removeprefix(Partition.PAYMENT.key(merchant, ""))
                listed = listing_fields(merchant, payment_id, parse_iso(values["created_at"]))
                client.update_item(**update(table, {PK: pk, SK: PAYMENT_SK}, listed)["Update"])
                counts["payments_listed"] += 1
    for payment_id, items in sorted(unchained.items(), key=lambda group: min(v["created_at"] for v in group[1])):
        items.sort(key=lambda values: values[SK])
        entries = [entry_of(values | {"payment_id": payment_id}) for values in items]
        uow = store.unit_of_work()
        uow.append(_ChainInPlace(store, [{PK: v[PK], SK: v[SK]} for v in items], entries))
        uow.commit()
        counts["entries_chained"] += len(entries)
    return counts


def main() -> None:
    from stacks.config import ENVIRONMENT_NAMES, configured_environment

    parser = argparse.ArgumentParser(prog="python -m tools.chain_records", description=__doc__.split("\n\n")[0])
    parser.add_argument("--environment", required=True, choices=ENVIRONMENT_NAMES)
    args = parser.parse_args()
    config = configured_environment(args.environment)
    client = boto3.client("dynamodb", region_name=config.region)
    table = f"{config.prefix}-ledger"
    merchants = [m.id for m in DynamoMerchantDirectory(client, f"{config.prefix}-merchants").merchants()]
    for merchant in merchants:
        print(json.dumps({"table": table, "merchant": merchant, **chain_records(client, table, merchant)}))


if __name__ == "__main__":
    main()
