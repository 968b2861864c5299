"""`make verify` (python -m tools.verify --environment dev): the ledger proves itself, or the first break is named.

For each merchant (every one in the merchants table, or ``--merchant``), each of its hash chains is read in
sequence order (the ledger's ``by_chain`` index) and recomputed from its entries, then compared with the chain's
head: an edited entry (its hash no longer follows), a deleted one (a gap), an inserted one, or a head whose hash
or balances disagree with the entries (lambdas.domain.chains.check_chain). Then every entry as stored (a scan) must
be in a chain, under the payment its hash names: an entry outside the chains (a copy of a chained one under
another key included), or moved to another payment's ledger, is a break too. Last, every signed checkpoint,
oldest first, must hold with the ledger's public key, its root must be the Merkle root of the chain positions kept
with it, none may be missing, no chain may go back between two, and every position it signed must be where the
entries put that chain: a chain rewritten whole (every hash recomputed, its head too) checks by itself, but not
against what was signed (lambdas.domain.checkpoints).
Read-only: credentials that can read the two tables and the signing key's public key suffice. Exit 0 when intact,
1 naming the first break; progress and entries per second on stderr.

``--endpoint-url`` points it at the emulator (`make local` runs one at 127.0.0.1:5000)."""

import argparse
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from lambdas.adapters.dynamo import from_item, to_item
from lambdas.adapters.ledger_store import BY_CHAIN, PK, SK, DynamoLedgerStore, entry_of
from lambdas.adapters.merchants import DynamoMerchantDirectory
from lambdas.domain.chains import CHAINS, MISSING_AT_THE_END, Break, check_chain
from lambdas.domain.checkpoints import Checkpoint, checkpoint_break, pem_of
from lambdas.domain.payments import Entry
from lambdas.storage_schema import Partition
from stacks.config import ENVIRONMENT_NAMES, configured_environment

PROGRESS_EVERY = 10_000  # entries between progress lines
# The heads are read consistently, the entries from the by_chain index, which DynamoDB updates within about a second:
# on a ledger being written, a chain that looks short of its head is read again before it is called broken.
INDEX_LAG_RETRIES = 3
INDEX_LAG_SECONDS = 1.0


@dataclass(frozen=True)
class Report:
    merchants: int
    entries: int
    seconds: float
    broken: tuple[str, Break] | None = None  # (merchant, first break)

    @property
    def entries_per_second(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0


StoredKey = tuple[str, str]  # (the payment whose partition holds an entry, its sort key): where it is stored


def chain_items(client: Any, table: str, merchant: str, chain: int) -> Iterator[tuple[StoredKey, Entry]]:
    """The chain's entries in sequence order, each with the key it is stored under."""
    pages = client.get_paginator("query").paginate(
        TableName=table,
        IndexName=BY_CHAIN.name,
        KeyConditionExpression="#chain = :chain",
        ExpressionAttributeNames={"#chain": BY_CHAIN.partition_key},
        ExpressionAttributeValues=to_item({":chain": Partition.CHAIN.key(merchant, str(chain))}),
    )
    for page in pages:
        for item in page["Items"]:
            values = from_item(item)
            yield _stored_key(values)[1], entry_of(values)


def _stored_key(values: dict[str, Any]) -> tuple[str, StoredKey]:
    """The merchant and the stored key of a ledger entry's item."""
    merchant, payment_id = str(values[PK]).removeprefix(Partition.LEDGER.value).split("#", 1)
    return merchant, (payment_id, str(values[SK]))


def stored_entries(client: Any, table: str) -> dict[str, list[tuple[StoredKey, str]]]:
    """Every ledger entry item as stored, by merchant: its key and its id. A scan, so that an item no chain or
    index reaches is seen too."""
    pages = client.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="begins_with(#pk, :ledger)",
        ProjectionExpression="#pk, #sk, #id",
        ExpressionAttributeNames={"#pk": PK, "#sk": SK, "#id": "id"},
        ExpressionAttributeValues=to_item({":ledger": Partition.LEDGER.value}),
    )
    found: dict[str, list[tuple[StoredKey, str]]] = {}
    for page in pages:
        for item in page["Items"]:
            values = from_item(item)
            merchant, key = _stored_key(values)
            found.setdefault(merchant, []).append((key, values["id"]))
    return found


def outside_the_chains(stored: list[tuple[StoredKey, str]], chained: dict[StoredKey, str]) -> Break | None:
    """The first entry item stored where no chain puts it: reached by no chain (a new entry, or a copy of a chained
    one under another key), or under a payment other than the one its hash names (GET /payments/{id}/ledger reads
    the payment's partition, every item of it)."""
    for key, entry_id in sorted(stored):
        payment_id = key[0]
        if key not in chained:
            return Break(None, None, entry_id, f"an entry outside every chain, in payment {payment_id}'s ledger")
        if chained[key] != payment_id:
            return Break(None, None, entry_id, f"payment {chained[key]}'s entry, stored in {payment_id}'s ledger")
    return None


def checkpoints_break(
    checkpoints: list[Checkpoint], public_keys: Mapping[str, str], hash_at: dict[tuple[int, int], str]
) -> Break | None:
    previous = None
    for checkpoint in checkpoints:
        key_id = str(checkpoint.body.get("key_id"))
        if key_id not in public_keys:
            reason = f"signed by {key_id}, not one of the ledger's signing keys given"
            return Break(None, None, None, reason, checkpoint=checkpoint.sequence)
        broken = checkpoint_break(checkpoint, previous, (key_id, public_keys[key_id]), hash_at)
        if broken:
            return broken
        previous = checkpoint
    return None


def verify(
    client: Any,
    table: str,
    merchants: list[str],
    progress=lambda entries, seconds: None,
    public_keys: Mapping[str, str] | None = None,
) -> Report:
    """``public_keys``: the PEM of each key (by id) that signs or signed the checkpoints (the current one, and any
    replaced: a checkpoint names its key, and only a key given here is trusted)."""
    started, count = time.perf_counter(), 0
    stored = stored_entries(client, table)
    for merchant in merchants:
        chained: dict[StoredKey, str] = {}  # where each chained entry is stored -> the payment its hash names
        store = DynamoLedgerStore(client, table, metadata_cipher=None, merchant=merchant)  # type: ignore[arg-type]
        checkpoints = list(store.checkpoints())
        signed = {(leaf["chain"], leaf["sequence"]) for checkpoint in checkpoints for leaf in checkpoint.chains}
        hash_at: dict[tuple[int, int], str] = {}  # the recomputed chains' hashes where a checkpoint signed them
        merchant_heads = {head.chain: head for head in store.heads()}
        if set(merchant_heads) - set(range(CHAINS)):
            stray = min(set(merchant_heads) - set(range(CHAINS)))
            return Report(len(merchants), count, time.perf_counter() - started,
                          (merchant, Break(stray, 0, None, "a head for a chain the ledger does not have")))  # fmt: skip
        for chain in range(CHAINS):
            for attempt in range(INDEX_LAG_RETRIES + 1):
                items = list(chain_items(client, table, merchant, chain))
                entries = [entry for _, entry in items]
                broken = check_chain(merchant, chain, entries, merchant_heads.get(chain))
                if not (broken and broken.reason.startswith(MISSING_AT_THE_END) and attempt < INDEX_LAG_RETRIES):
                    break
                time.sleep(INDEX_LAG_SECONDS)  # the index may not show the newest entries yet
            for key, entry in items:
                chained[key] = entry.payment_id
                if (chain, entry.sequence) in signed and entry.hash:
                    hash_at[(chain, entry.sequence)] = entry.hash
                count += 1
                if count % PROGRESS_EVERY == 0:
                    progress(count, time.perf_counter() - started)
            if broken:
                return Report(len(merchants), count, time.perf_counter() - started, (merchant, broken))
        broken = outside_the_chains(stored.get(merchant, []), chained) or checkpoints_break(
            checkpoints, public_keys or {}, hash_at
        )
        if broken:
            return Report(len(merchants), count, time.perf_counter() - started, (merchant, broken))
    return Report(len(merchants), count, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--environment", "--stack", choices=ENVIRONMENT_NAMES, help="its ledger and merchants tables")
    parser.add_argument("--table", help="the ledger table (instead of --environment's)")
    parser.add_argument("--merchants-table", help="where the merchants are listed (instead of --environment's)")
    parser.add_argument("--merchant", action="append", help="only these merchants (repeatable)")
    parser.add_argument("--signing-key", action="append", help="a key that signs or signed the checkpoints "
                        "(repeatable: a replaced key too; instead of --environment's)")  # fmt: skip
    parser.add_argument("--endpoint-url", help="an AWS-compatible endpoint (the emulator)")
    parser.add_argument("--region")
    args = parser.parse_args()
    if args.environment:
        config = configured_environment(args.environment)
        table = args.table or f"{config.prefix}-ledger"
        merchants_table = args.merchants_table or f"{config.prefix}-merchants"
        region = args.region or config.region
        signing_keys = args.signing_key or [config.key_alias("signing")]
    elif args.table and args.signing_key and (args.merchant or args.merchants_table):
        table, merchants_table, region, signing_keys = args.table, args.merchants_table, args.region, args.signing_key
    else:
        parser.error("name --environment, or --table and --signing-key with --merchant or --merchants-table")
    client = boto3.client("dynamodb", endpoint_url=args.endpoint_url, region_name=region)
    kms = boto3.client("kms", endpoint_url=args.endpoint_url, region_name=region)
    public_keys = {}
    for signing_key in signing_keys:
        key_arn = kms.describe_key(KeyId=signing_key)["KeyMetadata"]["Arn"]  # the checkpoints' key_id names it so
        public_keys[key_arn] = pem_of(kms.get_public_key(KeyId=key_arn)["PublicKey"])
    merchants = args.merchant or [m.id for m in DynamoMerchantDirectory(client, merchants_table).merchants()]

    def progress(entries: int, seconds: float) -> None:
        print(f"... {entries} entries, {entries / seconds:,.0f}/s", file=sys.stderr, flush=True)

    report = verify(client, table, merchants, progress, public_keys)
    rate = f"{report.entries} entries of {report.merchants} merchants in {report.seconds:.2f} s"
    rate += f" ({report.entries_per_second:,.0f} entries/s)"
    if report.broken:
        merchant, broken = report.broken
        print(f"BROKEN: merchant {merchant}, {broken} (after {rate})")
        sys.exit(1)
    print(f"intact: {rate}")


if __name__ == "__main__":
    main()
