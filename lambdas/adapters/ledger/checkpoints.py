"""Signed checkpoints of a merchant's chains, in one partition by sequence; each is only ever put, and kept as
the signed JSON text, so that what is served is byte for byte what was signed."""

import json
from collections.abc import Iterator
from typing import Any

from lambdas.adapters.dynamo import DynamoUnitOfWork, put_new
from lambdas.adapters.ledger.table import PK, SK, LedgerTable
from lambdas.domain.chains import canonical
from lambdas.domain.checkpoints import Checkpoint
from lambdas.ports import MisfiledCheckpoint
from lambdas.storage_schema import Partition, from_item, to_item

CHECKPOINTS = "checkpoints"  # the identifier of a merchant's partition of checkpoints, by sequence
CHECKPOINT_SK = "CHECKPOINT#"


class DynamoCheckpointRecords:
    def __init__(self, table: LedgerTable) -> None:
        self.table = table
        self.pk = table.key(Partition.CHECKPOINT, CHECKPOINTS)

    def latest_checkpoint(self) -> Checkpoint | None:
        values = next(self.table.partition(self.pk, ScanIndexForward=False, Limit=1), None)
        return checkpoint_of(values) if values else None

    def checkpoints(self) -> Iterator[Checkpoint]:
        return (checkpoint_of(values) for values in self.table.partition(self.pk))

    def checkpoint(self, sequence: int) -> Checkpoint | None:
        values = self.table.get(self.pk, checkpoint_sk(sequence))
        return checkpoint_of(values) if values else None

    def list_checkpoints(self, limit: int, before: int | None) -> tuple[list[Checkpoint], bool]:
        """Up to ``limit`` checkpoints, newest first, numbered below ``before`` (None: from the newest); whether more
        follow."""
        condition, values = "#pk = :pk", {":pk": self.pk}
        if before is not None:
            condition += " AND #sk < :before"
            values[":before"] = checkpoint_sk(before)
        answer = self.table.client.query(
            TableName=self.table.name,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#pk": PK} | ({"#sk": SK} if before is not None else {}),
            ExpressionAttributeValues=to_item(values),
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=limit + 1,
        )
        found = [checkpoint_of(from_item(item)) for item in answer["Items"]]
        return found[:limit], len(found) > limit

    def add_checkpoint(self, uow: DynamoUnitOfWork, checkpoint: Checkpoint) -> None:
        unsigned = {field: value for field, value in checkpoint.body.items() if field != "signature"}
        values = {
            PK: self.pk,
            SK: checkpoint_sk(checkpoint.sequence),
            "document": canonical(unsigned).decode(),
            "signature": checkpoint.body["signature"],
            "chains": canonical({"chains": checkpoint.chains}).decode(),
        }
        uow.add("checkpoint", put_new(self.table.name, values, PK))


def checkpoint_sk(sequence: int) -> str:
    return f"{CHECKPOINT_SK}{sequence:012d}"


def checkpoint_of(values: dict[str, Any]) -> Checkpoint:
    """A checkpoint as stored; one under another sequence's sort key is refused (``MisfiledCheckpoint``)."""
    body = json.loads(values["document"]) | {"signature": values["signature"]}
    checkpoint = Checkpoint(body, json.loads(values["chains"])["chains"])
    if values[SK] != checkpoint_sk(checkpoint.sequence):
        raise MisfiledCheckpoint(str(values[SK]), checkpoint.sequence)
    return checkpoint
