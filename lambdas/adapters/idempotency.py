"""Idempotency records in their own table (Powertools' layout: ``id`` + ``expiration`` TTL).

A record is claimed in the same transaction as the first write of the request,
and completed in the same transaction as the last, so a replayed answer always
matches what was written. 5xx outcomes are not stored: the record is released
(kept with its resource id, marked retryable) so a retry resumes the same
payment instead of creating a second one.
"""

import hashlib
import json
import time
from dataclasses import dataclass
from enum import Enum

from lambdas.adapters.dynamo import from_item, put_new, to_item, update

RETENTION_SECONDS = 24 * 3600
IN_FLIGHT_SECONDS = 60  # longer than a function may run; a claim older than this was abandoned


class State(str, Enum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    RETRYABLE = "retryable"


@dataclass(frozen=True)
class Record:
    id: str
    state: State
    body_hash: str
    resource_id: str
    in_flight_until: int
    response_status: int | None = None
    response_body: str | None = None

    def abandoned(self, now: float) -> bool:
        return self.state is State.IN_PROGRESS and now > self.in_flight_until


def record_id(caller: str, route: str, key: str) -> str:
    """Keys are scoped to the caller and the route."""
    return hashlib.sha256(f"{caller}\n{route}\n{key}".encode()).hexdigest()


def body_hash(body: dict, path_parameters: dict) -> str:
    canonical = json.dumps({"body": body, "path": path_parameters}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, client, table: str, clock=time.time) -> None:
        self.client = client
        self.table = table
        self.clock = clock

    def get(self, id: str) -> Record | None:
        item = self.client.get_item(TableName=self.table, Key=to_item({"id": id}), ConsistentRead=True).get("Item")
        if not item:
            return None
        values = from_item(item)
        if values["expiration"] < self.clock():
            return None  # expired, waiting for TTL to remove it
        return Record(
            id=id,
            state=State(values["state"]),
            body_hash=values["body_hash"],
            resource_id=values["resource_id"],
            in_flight_until=int(values["in_flight_until"]),
            response_status=int(values["response_status"]) if "response_status" in values else None,
            response_body=values.get("response_body"),
        )

    def claim(self, id: str, body_hash: str, resource_id: str, previous: Record | None = None) -> dict:
        """Transaction part taking the key: a new record, or one released/abandoned before."""
        now = self.clock()
        fields = {"state": State.IN_PROGRESS.value, "body_hash": body_hash, "resource_id": resource_id,
                  "in_flight_until": int(now + IN_FLIGHT_SECONDS), "expiration": int(now + RETENTION_SECONDS)}  # fmt: skip
        if previous is None:
            return put_new(self.table, {"id": id, **fields}, "id")
        return update(self.table, {"id": id}, fields, condition="#state = :previous_state AND #in_flight_until = :previous_until",
                      condition_values={":previous_state": previous.state.value,
                                        ":previous_until": previous.in_flight_until})  # fmt: skip

    def complete(self, id: str, status: int, body: str) -> dict:
        """Transaction part storing the answer to replay."""
        return update(self.table, {"id": id}, {"state": State.COMPLETED.value, "response_status": status,
                                               "response_body": body})  # fmt: skip

    def claim_completed(self, id: str, body_hash: str, resource_id: str, status: int, body: str) -> dict:
        """A new record that is complete at once (the request made no outside call)."""
        now = self.clock()
        values = {"id": id, "state": State.COMPLETED.value, "body_hash": body_hash, "resource_id": resource_id,
                  "in_flight_until": int(now), "expiration": int(now + RETENTION_SECONDS),
                  "response_status": status, "response_body": body}  # fmt: skip
        return put_new(self.table, values, "id")

    def release(self, id: str) -> None:
        """After a 5xx: keep the resource id so a retry resumes it, answer nothing."""
        self.client.update_item(TableName=self.table, Key=to_item({"id": id}), UpdateExpression="SET #state = :retryable",
                                ExpressionAttributeNames={"#state": "state"},
                                ExpressionAttributeValues=to_item({":retryable": State.RETRYABLE.value}))  # fmt: skip

    def forget(self, id: str) -> None:
        """After a 4xx found once the key was claimed: nothing is kept."""
        self.client.delete_item(TableName=self.table, Key=to_item({"id": id}))
