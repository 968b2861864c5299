"""Idempotency records in their own table (``id`` + ``expiration`` TTL, the layout Powertools also uses): the
storage of ``lambdas.ports.IdempotencyStore``, conditional writes only (the protocol deciding about them is
``lambdas.use_cases.idempotency``). A stored answer is sealed when it carries metadata."""

import json
from typing import Any

from botocore.exceptions import ClientError

from lambdas.adapters.dynamo import DynamoUnitOfWork
from lambdas.adapters.envelope import EnvelopeCipher, Sealed
from lambdas.domain.idempotency import Record, State
from lambdas.ports import IDEMPOTENCY_PART, Answer
from lambdas.storage_schema import IDEMPOTENCY, from_item, to_item

KEY = IDEMPOTENCY.partition_key


class DynamoIdempotencyStore:
    def __init__(self, client: Any, table: str, answer_cipher: EnvelopeCipher) -> None:
        self.client = client
        self.table = table
        self.answer_cipher = answer_cipher

    # -- claiming ---------------------------------------------------------------------------

    def claim(self, uow: DynamoUnitOfWork, record: Record, answer: Answer | None, now: float) -> None:
        values: dict[str, Any] = {
            KEY: record.id,
            "digest": record.digest,
            "resource_id": record.resource_id,
            "expiration": record.expiration,
            "state": record.state.value,
            "in_flight_until": record.in_flight_until,
        }
        if answer is not None:
            values |= self._stored(record.id, answer)
        put = {
            "Put": {
                "TableName": self.table,
                "Item": to_item(values),
                "ConditionExpression": "attribute_not_exists(#id) OR #expiration < :now",
                "ExpressionAttributeNames": {"#id": KEY, "#expiration": "expiration"},
                "ExpressionAttributeValues": to_item({":now": int(now)}),
            }
        }
        uow.add(IDEMPOTENCY_PART, put, self._record)

    def get(self, key: str) -> Record | None:
        item = self.client.get_item(TableName=self.table, Key=to_item({KEY: key}), ConsistentRead=True).get("Item")
        return self._record(from_item(item) if item else None)

    def take_over(self, record: Record, in_flight_until: int) -> bool:
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
                        ":until": in_flight_until,
                        ":was": record.state.value,
                        ":was_until": record.in_flight_until,
                    }
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- finishing --------------------------------------------------------------------------

    def complete(self, uow: DynamoUnitOfWork, key: str, answer: Answer) -> None:
        fields = {"state": State.COMPLETED.value, **self._stored(key, answer)}
        uow.add(
            IDEMPOTENCY_PART,
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

    def require_idle(self, uow: DynamoUnitOfWork, key: str, now: float) -> None:
        uow.add(
            IDEMPOTENCY_PART,
            {
                "ConditionCheck": {
                    "TableName": self.table,
                    "Key": to_item({KEY: key}),
                    "ConditionExpression": "attribute_not_exists(#id) OR #state <> :in_progress OR #until < :now",
                    "ExpressionAttributeNames": {"#id": KEY, "#state": "state", "#until": "in_flight_until"},
                    "ExpressionAttributeValues": to_item({":in_progress": State.IN_PROGRESS.value, ":now": int(now)}),
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

    def answer(self, record: Record) -> Answer:
        stored: dict[str, Any] = json.loads(record.response_body or "{}")
        if "sealed" in stored:
            sealed = Sealed.from_item({k: bytes.fromhex(v) for k, v in stored["sealed"].items()})
            stored = json.loads(self.answer_cipher.open(sealed, record.id))
        return Answer(int(record.response_status or 0), stored)

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
