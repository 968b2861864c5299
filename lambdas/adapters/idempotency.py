"""Idempotency records in their own table (``id`` + ``expiration`` TTL, the layout Powertools also uses).

The whole protocol lives here (``lambdas.ports.IdempotencyStore``): a key is
claimed by a conditional put in the same transaction as the request's first
write, and a lost claim returns the record it met (no separate read) to decide
between a replay, a resume, a 409 and a 422. The answer is stored in the same
transaction as the request's last write, sealed when it carries metadata.
5xx outcomes are not stored: the record is released (kept with its object's
id, marked retryable) so a retry resumes that object instead of starting a
second one. An expired record is replaced at once; TTL only tidies up.
"""

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from lambdas.adapters.dynamo import DynamoUnitOfWork, from_item, to_item
from lambdas.adapters.envelope import EnvelopeCipher, Sealed
from lambdas.domain.errors import IdempotencyConflict
from lambdas.ports import Answer, Begun, Fresh, LostRace, Replay, Resume
from lambdas.storage_schema import IDEMPOTENCY

RETENTION_SECONDS = 24 * 3600
IN_FLIGHT_SECONDS = 60  # longer than a function may run; a claim older than this was abandoned
KEY = IDEMPOTENCY.partition_key
LABEL = "idempotency"


class State(str, Enum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    RETRYABLE = "retryable"


@dataclass(frozen=True)
class Record:
    id: str
    state: State
    digest: str
    resource_id: str
    in_flight_until: int
    expiration: int
    response_status: int | None = None
    response_body: str | None = None

    def abandoned(self, now: float) -> bool:
        return self.state is State.IN_PROGRESS and now > self.in_flight_until


def record_id(caller: str, route: str, key: str) -> str:
    """Keys are scoped to the caller and the route."""
    return hashlib.sha256(f"{caller}\n{route}\n{key}".encode()).hexdigest()


def key_in_use() -> IdempotencyConflict:
    return IdempotencyConflict(
        409, "idempotency_key_in_use", "A request with this Idempotency-Key is still in progress."
    )


def _body_differs() -> IdempotencyConflict:
    return IdempotencyConflict(
        422, "idempotency_key_reused", "This Idempotency-Key was used with a different request body."
    )


def must_reclaim(record: "Record | None", digest: str, now: float) -> bool:
    """The protocol's decision about a key that was taken: False to replay its answer, True to take the
    record over and resume its object; raises the 422 (another body) and the 409 (still in flight)."""
    if record is None:
        raise key_in_use()  # taken and gone again in between: the other request is the one to answer
    if record.digest != digest:
        raise _body_differs()
    if record.state is State.COMPLETED:
        return False
    if record.state is State.IN_PROGRESS and not record.abandoned(now):
        raise key_in_use()
    return True


class DynamoIdempotencyStore:
    def __init__(
        self, client: Any, table: str, answer_cipher: EnvelopeCipher, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.table = table
        self.answer_cipher = answer_cipher
        self.clock = clock

    # -- claiming ---------------------------------------------------------------------------

    def begin(
        self, uow: DynamoUnitOfWork, key: str, digest: str, resource_id: str, answer: Answer | None = None
    ) -> Begun:
        now = self.clock()
        values: dict[str, Any] = {
            KEY: key,
            "digest": digest,
            "resource_id": resource_id,
            "expiration": int(now + RETENTION_SECONDS),
        }
        if answer is None:
            values |= {"state": State.IN_PROGRESS.value, "in_flight_until": int(now + IN_FLIGHT_SECONDS)}
        else:
            values |= {"state": State.COMPLETED.value, "in_flight_until": int(now), **self._stored(key, answer)}
        put = {
            "Put": {
                "TableName": self.table,
                "Item": to_item(values),
                "ConditionExpression": "attribute_not_exists(#id) OR #expiration < :now",
                "ExpressionAttributeNames": {"#id": KEY, "#expiration": "expiration"},
                "ExpressionAttributeValues": to_item({":now": int(now)}),
            }
        }
        uow.add(LABEL, put, self._record)
        try:
            uow.commit()
            return Fresh()
        except LostRace as race:
            if LABEL not in race.conflicts:
                raise
            return self._after_lost_claim(race.conflicts[LABEL], digest)

    def resume_or_replay(self, key: str, digest: str) -> Replay | Resume | None:
        item = self.client.get_item(TableName=self.table, Key=to_item({KEY: key}), ConsistentRead=True).get("Item")
        record = self._record(from_item(item) if item else None)
        if record is None or record.expiration < self.clock():
            return None
        return self._after_lost_claim(record, digest)

    def _after_lost_claim(self, record: "Record | None", digest: str) -> Replay | Resume:
        reclaim = must_reclaim(record, digest, self.clock())
        assert record is not None  # must_reclaim raised the 409 for a record gone in between
        if reclaim:
            return self._reclaim(record)
        return Replay(Answer(int(record.response_status or 0), self._open(record), replayed=True))

    def _reclaim(self, record: Record) -> Resume:
        """Take over a released or abandoned record, only from the state it was read in."""
        now = self.clock()
        try:
            self.client.update_item(
                TableName=self.table,
                Key=to_item({KEY: record.id}),
                UpdateExpression="SET #state = :claimed, #until = :until",
                ConditionExpression="#state = :was AND #until = :was_until",
                ExpressionAttributeNames={"#state": "state", "#until": "in_flight_until"},
                ExpressionAttributeValues=to_item(
                    {
                        ":claimed": State.IN_PROGRESS.value,
                        ":until": int(now + IN_FLIGHT_SECONDS),
                        ":was": record.state.value,
                        ":was_until": record.in_flight_until,
                    }
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise key_in_use() from None
            raise
        return Resume(record.resource_id)

    # -- finishing --------------------------------------------------------------------------

    def complete(self, uow: DynamoUnitOfWork, key: str, answer: Answer) -> None:
        fields = {"state": State.COMPLETED.value, **self._stored(key, answer)}
        uow.add(
            LABEL,
            {
                "Update": {
                    "TableName": self.table,
                    "Key": to_item({KEY: key}),
                    "UpdateExpression": "SET " + ", ".join(f"#{name} = :{name}" for name in fields),
                    "ConditionExpression": "#state = :in_progress",
                    "ExpressionAttributeNames": {f"#{name}": name for name in fields},
                    "ExpressionAttributeValues": to_item(
                        {**{f":{k}": v for k, v in fields.items()}, ":in_progress": State.IN_PROGRESS.value}
                    ),
                }
            },
            self._record,
        )

    def release(self, key: str) -> None:
        self._update_in_progress(key, "SET #state = :retryable", {":retryable": State.RETRYABLE.value})

    def forget(self, key: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=to_item({KEY: key}),
                ConditionExpression="#state = :in_progress",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_item({":in_progress": State.IN_PROGRESS.value}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def require_idle(self, uow: DynamoUnitOfWork, key: str) -> None:
        uow.add(
            LABEL,
            {
                "ConditionCheck": {
                    "TableName": self.table,
                    "Key": to_item({KEY: key}),
                    "ConditionExpression": "attribute_not_exists(#id) OR #state <> :in_progress OR #until < :now",
                    "ExpressionAttributeNames": {"#id": KEY, "#state": "state", "#until": "in_flight_until"},
                    "ExpressionAttributeValues": to_item(
                        {":in_progress": State.IN_PROGRESS.value, ":now": int(self.clock())}
                    ),
                }
            },
            self._record,
        )

    def _update_in_progress(self, key: str, expression: str, values: dict[str, Any]) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=to_item({KEY: key}),
                UpdateExpression=expression,
                ConditionExpression="#state = :in_progress",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_item({**values, ":in_progress": State.IN_PROGRESS.value}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # -- stored answers ---------------------------------------------------------------------

    def _stored(self, key: str, answer: Answer) -> dict[str, Any]:
        """The answer as stored: sealed when it carries metadata (only payments carry data worth sealing)."""
        text = json.dumps(answer.body, separators=(",", ":"))
        if answer.body.get("metadata"):
            sealed = self.answer_cipher.seal(text.encode(), key)
            text = json.dumps({"sealed": {k: v.hex() for k, v in sealed.to_item().items()}})
        return {"response_status": answer.status, "response_body": text}

    def _open(self, record: Record) -> dict[str, Any]:
        stored: dict[str, Any] = json.loads(record.response_body or "{}")
        if "sealed" not in stored:
            return stored
        sealed = Sealed.from_item({k: bytes.fromhex(v) for k, v in stored["sealed"].items()})
        body: dict[str, Any] = json.loads(self.answer_cipher.open(sealed, record.id))
        return body

    @staticmethod
    def _record(values: dict[str, Any] | None) -> Record | None:
        if not values:
            return None
        return Record(
            id=values[KEY],
            state=State(values["state"]),
            digest=values["digest"],
            resource_id=values["resource_id"],
            in_flight_until=int(values["in_flight_until"]),
            expiration=int(values["expiration"]),
            response_status=int(values["response_status"]) if "response_status" in values else None,
            response_body=values.get("response_body"),
        )
