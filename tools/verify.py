"""`make verify` (python -m tools.verify --environment dev): the ledger proves itself, or the first break is named.

For each merchant (every one in the merchants table and every one with a partition in the ledger table, or only
``--merchant``), each of its hash chains is read in sequence order (the ledger's ``by_chain`` index) and recomputed
from its entries, then compared with the chain's head, read before the chain (entries appended since are left to
the next run, if the head read again covers them): an edited entry (its hash no longer follows), a deleted one (a
gap), an inserted one, an entry of another chain, or a head whose hash or balances disagree with the entries
(lambdas.domain.chains.check_chain). The books must hold too: every amount a whole number above 0, and each
payment's and refund's entries in one currency, their debits equal to their credits (books_break); every item a
chain reaches must be stored in its own payment's ledger partition of the merchant, with a whole-number amount as
stored (stored_break). Then every entry as stored (a scan) must be in a chain: an entry outside the chains (a copy
of a chained one under another key included) is a break too, and so is a checkpoint item stored under another
checkpoint's sort key. Last, every
signed checkpoint, oldest first, must hold with the ledger's public key, its root must be the Merkle root of the
chain positions kept with it, none may be missing, no chain may go back between two, and every position it signed
must be where the entries put that chain: a chain rewritten whole (every hash recomputed, its head too) checks by
itself, but not against what was signed (lambdas.domain.checkpoints). The checkpoints checked are those of their
write-once copy (the stack's checkpoint bucket; `make local`'s directory), read before the table, and the table's
are held to it (``copy_break``): a checkpoint deleted or replaced in the table, one the copy never kept, and a chain
rewritten under a deleted checkpoint are each named.
Read-only: credentials that can read the two tables, the copy and the signing key's public key suffice. Exit 0
when intact, 1 naming the first break; progress and entries per second on stderr.

``--endpoint-url`` points it at the emulator (`make local` runs one at 127.0.0.1:5000)."""

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3

from lambdas.adapters.checkpoint_archive import (
    Archived,
    DirectoryCheckpointArchive,
    S3CheckpointArchive,
    archived_in_bucket,
    archived_in_directory,
)
from lambdas.adapters.dynamo import from_item, to_item
from lambdas.adapters.ledger.chains import entry_of
from lambdas.adapters.ledger.table import PK, SK
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.adapters.merchants import DynamoMerchantDirectory
from lambdas.domain.chains import CHAINS, MISSING_AT_THE_END, Break, Head, books_break, check_chain
from lambdas.domain.checkpoints import Checkpoint, checkpoint_break, pem_of
from lambdas.domain.payments import Entry
from lambdas.ports import MisfiledCheckpoint
from lambdas.storage_schema import BY_CHAIN, Partition
from stacks.config import ENVIRONMENT_NAMES, configured_environment

PROGRESS_EVERY = 10_000  # entries between progress lines
# The heads are read consistently, the entries from the by_chain index, which DynamoDB updates within about a second:
# on a ledger being written, a chain that looks short of its head is read again before it is called broken.
INDEX_LAG_RETRIES = 3
INDEX_LAG_SECONDS = 1.0
# A checkpoint run writes the copy, then the table, milliseconds apart: a checkpoint the table lacks is looked for
# again after this long before it is called deleted.
BETWEEN_WRITES_SECONDS = 1.0


@dataclass(frozen=True)
class Report:
    merchants: int
    entries: int
    seconds: float
    broken: tuple[str, Break] | None = None  # (merchant, first break)

    @property
    def entries_per_second(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0


StoredKey = tuple[str, str]  # (partition key, sort key): where an entry's item is stored


def chain_items(client: Any, table: str, merchant: str, chain: int) -> Iterator[tuple[StoredKey, Entry]]:
    """The chain's entries in sequence order, each with the key it is stored under."""
    for values in chain_values(client, table, merchant, chain):
        yield _stored_key(values), entry_of(values)


def chain_values(client: Any, table: str, merchant: str, chain: int) -> Iterator[dict[str, Any]]:
    """The items the chain's index reaches, in sequence order, as stored."""
    pages = client.get_paginator("query").paginate(
        TableName=table,
        IndexName=BY_CHAIN.name,
        KeyConditionExpression="#chain = :chain",
        ExpressionAttributeNames={"#chain": BY_CHAIN.partition_key},
        ExpressionAttributeValues=to_item({":chain": Partition.CHAIN.key(merchant, str(chain))}),
    )
    for page in pages:
        yield from (from_item(item) for item in page["Items"])


def _stored_key(values: dict[str, Any]) -> StoredKey:
    return str(values[PK]), str(values[SK])


def stored_break(merchant: str, chain: int, items: list[dict[str, Any]]) -> Break | None:
    """The first item the chain reaches that is not stored as the ledger stores an entry: with an amount that is
    not a whole number (read as one, it would be cut to one), or anywhere but its payment's ledger partition of the
    merchant (GET /payments/{id}/ledger reads that partition, every item of it, and nothing else)."""
    for values in items:
        amount, sequence, entry_id = values.get("amount"), values.get("sequence"), values.get("id")
        where = (chain, int(sequence) if isinstance(sequence, Decimal) else None, entry_id)
        if not isinstance(amount, Decimal) or amount != amount.to_integral_value():
            return Break(*where, f"an amount of {amount} as stored: every amount is a whole number above 0")
        payment_id = entry_of(values).payment_id
        if values[PK] != Partition.LEDGER.key(merchant, payment_id):
            return Break(*where, f"stored under {values[PK]}, not in payment {payment_id}'s ledger")
    return None


def stored_entries(client: Any, table: str) -> dict[str, list[tuple[StoredKey, str]]]:
    """Every ledger entry item as stored, by merchant: its key and its id; and every merchant with a partition of
    entries, chain heads or checkpoints, configured or not. A scan, so that an item no chain or index reaches is
    seen too."""
    pages = client.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="begins_with(#pk, :ledger) OR begins_with(#pk, :chain) OR begins_with(#pk, :checkpoint)",
        ProjectionExpression="#pk, #sk, #id",
        ExpressionAttributeNames={"#pk": PK, "#sk": SK, "#id": "id"},
        ExpressionAttributeValues=to_item(
            {
                ":ledger": Partition.LEDGER.value,
                ":chain": Partition.CHAIN.value,
                ":checkpoint": Partition.CHECKPOINT.value,
            }
        ),
    )
    found: dict[str, list[tuple[StoredKey, str]]] = {}
    for page in pages:
        for item in page["Items"]:
            values = from_item(item)
            partition = next(p for p in Partition if str(values[PK]).startswith(p.value))
            entries = found.setdefault(str(values[PK]).removeprefix(partition.value).split("#", 1)[0], [])
            if partition is Partition.LEDGER:
                # An item without an id (no entry the service wrote) is named by its sort key.
                entries.append((_stored_key(values), str(values.get("id") or values[SK])))
    return found


def pinned_chain_break(
    store: DynamoLedgerStore, chain: int, entries: list[Entry], pinned: Head
) -> tuple[list[Entry], Break | None]:
    """The entries of ``chain`` that ``pinned`` (its head, read before the chain) covers, and the first break among
    them: the chain's, or its books'. Entries past ``pinned`` were appended since (an append moves the head in the
    same transaction): they are left to the next run, as long as the head read again now covers them; else they
    were inserted past the head."""
    covered = [entry for entry in entries if (entry.sequence or 0) <= pinned.sequence]
    if len(covered) < len(entries):
        now = store.chains.head(chain)
        if now.sequence < max(entry.sequence or 0 for entry in entries):
            return covered, check_chain(store.merchant, chain, entries, now)
    return covered, check_chain(store.merchant, chain, covered, pinned) or books_break(chain, covered)


def outside_the_chains(stored: list[tuple[StoredKey, str]], chained: set[StoredKey]) -> Break | None:
    """The first entry item stored where no chain reaches it (a new entry, or a copy of a chained one under another
    key). Each item a chain reaches is under its own payment's ledger (``stored_break``)."""
    for key, entry_id in sorted(stored):
        if key not in chained:
            payment_id = key[0].removeprefix(Partition.LEDGER.value).split("#", 1)[-1]
            return Break(None, None, entry_id, f"an entry outside every chain, in payment {payment_id}'s ledger")
    return None


def checkpoints_break(
    merchant: str, checkpoints: list[Checkpoint], public_keys: Mapping[str, str], hash_at: dict[tuple[int, int], str]
) -> Break | None:
    previous = None
    for checkpoint in checkpoints:
        key_id = str(checkpoint.body.get("key_id"))
        if key_id not in public_keys:
            reason = f"signed by {key_id}, not one of the ledger's signing keys given"
            return Break(None, None, None, reason, checkpoint=checkpoint.sequence)
        if checkpoint.body.get("merchant") != merchant:
            reason = f"it names merchant {checkpoint.body.get('merchant')}, not this one"
            return Break(None, None, None, reason, checkpoint=checkpoint.sequence)
        broken = checkpoint_break(checkpoint, previous, (key_id, public_keys[key_id]), hash_at)
        if broken:
            return broken
        previous = checkpoint
    return None


@dataclass(frozen=True)
class Copy:
    """The checkpoints' write-once copy (lambdas.adapters.checkpoint_archive), as read before the table, and one of
    its checkpoints read again (merchant, sequence): one the table has that the first read missed was kept since
    (a checkpoint is kept before the table has it)."""

    archived: Archived
    read_again: Callable[[str, int], Checkpoint | None]


def read_directory(root: Path) -> Copy:
    return Copy(archived_in_directory(root), lambda merchant, n: DirectoryCheckpointArchive(root, merchant).kept(n))


def read_bucket(s3: Any, bucket: str) -> Copy:
    return Copy(
        archived_in_bucket(s3, bucket), lambda merchant, n: S3CheckpointArchive(lambda: s3, bucket, merchant).kept(n)
    )


def table_checkpoints(store: DynamoLedgerStore) -> tuple[list[Checkpoint], Break | None]:
    """The table's checkpoints, oldest first; or none and a checkpoint stored under another one's key (whose item
    a run would take for the newest, or miss)."""
    try:
        return list(store.checkpoints()), None
    except MisfiledCheckpoint as misfiled:
        reason = f"stored in the table under {misfiled.sort_key}, not its own key"
        return [], Break(None, None, None, reason, checkpoint=misfiled.sequence)


def copy_break(store: DynamoLedgerStore, in_table: list[Checkpoint], copy: Copy) -> Break | None:
    """The table's checkpoints held to the write-once copy: each it holds must be there as kept, and each kept must
    be in the table (read again once first: a run may be between its two writes)."""
    kept = copy.archived.get(store.merchant, {})
    table = {c.sequence: c for c in in_table}
    if set(kept) - set(table):
        time.sleep(BETWEEN_WRITES_SECONDS)
        again, misfiled = table_checkpoints(store)
        if misfiled:
            return misfiled
        table = {c.sequence: c for c in again}
    for sequence in sorted(set(table) | set(kept)):
        if sequence not in table:
            return Break(None, None, None, "deleted from the table: the write-once copy holds it", sequence)
        original = kept.get(sequence) or copy.read_again(store.merchant, sequence)
        if original is None:
            return Break(None, None, None, "not in the write-once copy: the table has one it never kept", sequence)
        if (table[sequence].body, table[sequence].chains) != (original.body, original.chains):
            return Break(
                None, None, None, "replaced in the table: it is not the one the write-once copy holds", sequence
            )
    return None


def verify(
    client: Any,
    table: str,
    merchants: list[str],
    progress=lambda entries, seconds: None,
    public_keys: Mapping[str, str] | None = None,
    only: bool = False,
    copy: Copy | None = None,
) -> Report:
    """``merchants``, and every other merchant with a partition in the table or the copy unless ``only``.
    ``public_keys``: the PEM of each key (by id) that signs or signed the checkpoints (the current one, and any
    replaced: a checkpoint names its key, and only a key given here is trusted). ``copy``: the checkpoints'
    write-once copy, read before the table; the chains are held to its checkpoints, and the table's to it."""
    started, count = time.perf_counter(), 0
    stored = stored_entries(client, table)  # before the heads: every entry it finds, a head read after it covers
    merchants = list(merchants) if only else sorted({*merchants, *stored, *(copy.archived if copy else ())})
    for merchant in merchants:
        chained: set[StoredKey] = set()  # where each chained entry is stored
        store = DynamoLedgerStore(client, table, metadata_cipher=None, merchant=merchant)  # type: ignore[arg-type]
        checkpoints, misfiled = table_checkpoints(store)
        held = sorted(copy.archived.get(merchant, {}).values(), key=lambda c: c.sequence) if copy else checkpoints
        signed = {(leaf["chain"], leaf["sequence"]) for c in (*checkpoints, *held) for leaf in c.chains}
        hash_at: dict[tuple[int, int], str] = {}  # the recomputed chains' hashes where a checkpoint signed them
        merchant_heads = {head.chain: head for head in store.heads()}
        if set(merchant_heads) - set(range(CHAINS)):
            stray = min(set(merchant_heads) - set(range(CHAINS)))
            return Report(len(merchants), count, time.perf_counter() - started,
                          (merchant, Break(stray, 0, None, "a head for a chain the ledger does not have")))  # fmt: skip
        for chain in range(CHAINS):
            for attempt in range(INDEX_LAG_RETRIES + 1):
                items = list(chain_values(client, table, merchant, chain))
                broken = stored_break(merchant, chain, items)
                if broken:
                    return Report(len(merchants), count, time.perf_counter() - started, (merchant, broken))
                entries = [entry_of(values) for values in items]
                pinned = merchant_heads.get(chain, Head(chain))
                covered, broken = pinned_chain_break(store, chain, entries, pinned)
                if not (broken and broken.reason.startswith(MISSING_AT_THE_END) and attempt < INDEX_LAG_RETRIES):
                    break
                time.sleep(INDEX_LAG_SECONDS)  # the index may not show the newest entries yet
            for values, entry in zip(items, entries, strict=True):
                chained.add(_stored_key(values))
                if (chain, entry.sequence) in signed and entry.hash:
                    hash_at[(chain, entry.sequence)] = entry.hash
            count += len(covered)
            if count // PROGRESS_EVERY > (count - len(covered)) // PROGRESS_EVERY:
                progress(count, time.perf_counter() - started)
            if broken:
                return Report(len(merchants), count, time.perf_counter() - started, (merchant, broken))
        broken = (
            outside_the_chains(stored.get(merchant, []), chained)
            or misfiled
            or checkpoints_break(merchant, held, public_keys or {}, hash_at)
            or (copy_break(store, checkpoints, copy) if copy else None)
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
    copy = parser.add_mutually_exclusive_group()
    copy.add_argument("--archive-bucket", help="the checkpoints' write-once bucket (instead of $CHECKPOINT_BUCKET, "
                      "or --environment's: stack output checkpoint_bucket)")  # fmt: skip
    copy.add_argument("--archive-dir", type=Path, help="the checkpoints' write-once directory (with --endpoint-url: "
                      "`make local`'s, .local/checkpoints or $PAYMENTS_LOCAL_CHECKPOINTS)")  # fmt: skip
    args = parser.parse_args()
    if args.environment:
        config = configured_environment(args.environment)
        table = args.table or f"{config.prefix}-ledger"
        merchants_table = args.merchants_table or f"{config.prefix}-merchants"
        region = args.region or config.region
        signing_keys = args.signing_key or [config.key_alias("signing")]
        bucket = args.archive_bucket or os.environ.get("CHECKPOINT_BUCKET") or config.checkpoint_bucket
    elif args.table and args.signing_key and (args.merchant or args.merchants_table):
        table, merchants_table, region, signing_keys = args.table, args.merchants_table, args.region, args.signing_key
        bucket = args.archive_bucket or os.environ.get("CHECKPOINT_BUCKET")
    else:
        parser.error("name --environment, or --table and --signing-key with --merchant or --merchants-table")
    if args.archive_dir is None and args.endpoint_url and not args.archive_bucket:
        from tools.local import archive_dir  # the emulator's copy is `make local`'s: loaded only then

        args.archive_dir = archive_dir()
    if args.archive_dir is None and not bucket:
        parser.error("name the checkpoints' write-once copy: --archive-bucket or --archive-dir")
    client = boto3.client("dynamodb", endpoint_url=args.endpoint_url, region_name=region)
    kms = boto3.client("kms", endpoint_url=args.endpoint_url, region_name=region)
    public_keys = {}
    for signing_key in signing_keys:
        key_arn = kms.describe_key(KeyId=signing_key)["KeyMetadata"]["Arn"]  # the checkpoints' key_id names it so
        public_keys[key_arn] = pem_of(kms.get_public_key(KeyId=key_arn)["PublicKey"])
    merchants = args.merchant or [m.id for m in DynamoMerchantDirectory(client, merchants_table).merchants()]
    if args.archive_dir is not None:
        copy = read_directory(args.archive_dir)
    else:
        copy = read_bucket(boto3.client("s3", endpoint_url=args.endpoint_url, region_name=region), bucket)

    def progress(entries: int, seconds: float) -> None:
        print(f"... {entries} entries, {entries / seconds:,.0f}/s", file=sys.stderr, flush=True)

    report = verify(client, table, merchants, progress, public_keys, only=bool(args.merchant), copy=copy)
    rate = f"{report.entries} entries of {report.merchants} merchants in {report.seconds:.2f} s"
    rate += f" ({report.entries_per_second:,.0f} entries/s)"
    if report.broken:
        merchant, broken = report.broken
        print(f"BROKEN: merchant {merchant}, {broken} (after {rate})")
        sys.exit(1)
    print(f"intact: {rate}")


if __name__ == "__main__":
    main()
