"""The write-once copy of the checkpoints (``lambdas.ports.CheckpointArchive``): deployed, an S3 bucket under Object
Lock in compliance mode (stacks/checkpoint_archive.py); locally, a directory.

Each checkpoint is one object, ``<merchant>/<sequence:010d>.json``, holding its signed body and the chain positions
its root is computed from, as canonical JSON. An object is only ever created: S3's conditional write
(``If-None-Match: *``, which the bucket's policy requires) and a hard link (which fails on an existing name) refuse a
second writer of the same sequence. ``archived_in_bucket`` and ``archived_in_directory`` read a whole copy back, for
`make verify`."""

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from lambdas.domain.chains import canonical
from lambdas.domain.checkpoints import Checkpoint
from lambdas.ports import ArchiveTaken

# S3's answers to a conditional write whose name is taken, or being taken by a write still in flight.
TAKEN_CODES = ("PreconditionFailed", "ConditionalRequestConflict")
Archived = dict[str, dict[int, Checkpoint]]  # merchant -> sequence -> checkpoint


def object_key(merchant: str, sequence: int) -> str:
    return f"{merchant}/{sequence:010d}.json"


def document(checkpoint: Checkpoint) -> bytes:
    return canonical({"checkpoint": checkpoint.body, "chains": checkpoint.chains})


def checkpoint_of(text: bytes) -> Checkpoint:
    values: dict[str, Any] = json.loads(text)
    return Checkpoint(values["checkpoint"], values["chains"])


def _sequence_of(name: str) -> int | None:
    """The sequence an object's file name gives (``0000000007.json``), or None for another name."""
    stem, dot, extension = name.partition(".")
    return int(stem) if dot and extension == "json" and len(stem) == 10 and stem.isdigit() else None


class S3CheckpointArchive:
    """``client``: makes (or returns) the S3 client on first use, so that functions that never keep a checkpoint
    never load it."""

    def __init__(self, client: Callable[[], Any], bucket: str, merchant: str) -> None:
        self.client = client
        self.bucket = bucket
        self.merchant = merchant

    def keep(self, checkpoint: Checkpoint) -> None:
        """Encrypted and locked by the bucket's defaults (its key, its retention)."""
        try:
            self.client().put_object(
                Bucket=self.bucket,
                Key=object_key(self.merchant, checkpoint.sequence),
                Body=document(checkpoint),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in TAKEN_CODES:
                raise ArchiveTaken(checkpoint.sequence) from None
            raise

    def kept(self, sequence: int) -> Checkpoint | None:
        try:
            answer = self.client().get_object(Bucket=self.bucket, Key=object_key(self.merchant, sequence))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return checkpoint_of(answer["Body"].read())


class DirectoryCheckpointArchive:
    """A directory of read-only files, one per checkpoint (`make local`): what the bucket is to a deployment."""

    def __init__(self, root: Path, merchant: str) -> None:
        self.root = root
        self.merchant = merchant

    def _path(self, sequence: int) -> Path:
        return self.root / object_key(self.merchant, sequence)

    def keep(self, checkpoint: Checkpoint) -> None:
        """Written whole under a temporary name, then linked to its own: the name appears complete or not at all,
        and only once."""
        path = self._path(checkpoint.sequence)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        written.write_bytes(document(checkpoint))
        written.chmod(0o444)
        try:
            os.link(written, path)
        except FileExistsError:
            raise ArchiveTaken(checkpoint.sequence) from None
        finally:
            written.unlink()

    def kept(self, sequence: int) -> Checkpoint | None:
        path = self._path(sequence)
        return checkpoint_of(path.read_bytes()) if path.exists() else None


def archived_in_directory(root: Path) -> Archived:
    found: Archived = {}
    for path in sorted(root.glob("*/*.json")):
        sequence = _sequence_of(path.name)
        if sequence is not None:
            found.setdefault(path.parent.name, {})[sequence] = checkpoint_of(path.read_bytes())
    return found


def archived_in_bucket(client: Any, bucket: str) -> Archived:
    """The first version written under each name: what was kept, whatever was put over it or marked deleted since
    (neither can remove it before its retention ends)."""
    first: dict[str, str] = {}  # key -> its first version: S3 lists a key's versions newest first
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            first[version["Key"]] = version["VersionId"]
    found: Archived = {}
    for key, version_id in sorted(first.items()):
        merchant, _, name = key.partition("/")
        sequence = _sequence_of(name)
        if sequence is not None:
            body = client.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
            found.setdefault(merchant, {})[sequence] = checkpoint_of(body)
    return found
