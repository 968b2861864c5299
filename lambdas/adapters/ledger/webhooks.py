"""Webhook endpoints and event deliveries in the ledger table (``lambdas.ports.WebhookRecords``).

A merchant's endpoints share one partition (one item each, by id, and a count of those not deleted, which caps them);
an endpoint is never deleted, only marked so, and its secret is sealed for its id (``Purpose.WEBHOOK_SECRET``).
An event's item (the outbox's) enters the ``by_due`` index when written; a delivery round leases it by moving
``due_at`` ahead with a conditional update, and ends by recording the endpoints that have it and either the next
``due_at`` or its removal from the index. Each attempt is an item in the event's partition, expiring with it."""

import secrets
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from lambdas.adapters.dynamo import DynamoUnitOfWork
from lambdas.adapters.envelope import EnvelopeCipher, Sealed
from lambdas.adapters.ledger.events import EVENT_SK, due_partition
from lambdas.adapters.ledger.table import PK, SK, LedgerTable, key_item
from lambdas.domain.events import Event
from lambdas.domain.timestamps import iso, parse_iso
from lambdas.domain.webhooks import Attempt, Endpoint
from lambdas.ports import DueEvent, Lease
from lambdas.storage_schema import BY_DUE, Partition, from_item, to_item

ENDPOINTS = "endpoints"  # the identifier of a merchant's partition of endpoints
COUNT_SK = "COUNT"  # the item counting the merchant's endpoints not deleted
ATTEMPT_SK = "ATTEMPT#"


class DynamoWebhookRecords:
    def __init__(self, table: LedgerTable, secret_cipher: EnvelopeCipher | None) -> None:
        self.table = table
        self.secret_cipher = secret_cipher  # None: a function that neither seals nor opens secrets
        self.pk = table.key(Partition.ENDPOINT, ENDPOINTS)

    # -- endpoints --------------------------------------------------------------------------------

    def add_endpoint(self, uow: DynamoUnitOfWork, endpoint: Endpoint, secret: str, limit: int) -> None:
        sealed = self._cipher().seal(secret.encode(), endpoint.id)
        values = {
            PK: self.pk,
            SK: endpoint.id,
            "url": endpoint.url,
            "events": list(endpoint.events),
            "created_at": iso(endpoint.created_at),
            "deleted": False,
            "secret": sealed.to_item(),
        }
        put = {
            "TableName": self.table.name,
            "Item": to_item(values),
            "ConditionExpression": "attribute_not_exists(#pk)",
        }
        uow.add("endpoint", {"Put": put | {"ExpressionAttributeNames": {"#pk": PK}}})
        uow.add("endpoints", self._count(1, "attribute_not_exists(#n) OR #n < :limit", {":limit": limit}))

    def delete_endpoint(self, uow: DynamoUnitOfWork, endpoint: Endpoint) -> None:
        mark = {
            "TableName": self.table.name,
            "Key": key_item(self.pk, endpoint.id),
            "UpdateExpression": "SET #deleted = :true",
            "ConditionExpression": "#deleted = :false",
            "ExpressionAttributeNames": {"#deleted": "deleted"},
            "ExpressionAttributeValues": to_item({":true": True, ":false": False}),
        }
        uow.add("endpoint", {"Update": mark}, lambda item: _endpoint(item) if item else None)
        uow.add("endpoints", self._count(-1, "#n > :zero", {":zero": 0}))

    def _count(self, change: int, condition: str, values: dict[str, Any]) -> dict[str, Any]:
        """A part moving the count of endpoints not deleted by ``change``, only while ``condition`` holds."""
        update = {
            "TableName": self.table.name,
            "Key": key_item(self.pk, COUNT_SK),
            "UpdateExpression": "SET #n = if_not_exists(#n, :zero) + :change",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#n": "active"},
            "ExpressionAttributeValues": to_item({":zero": 0, ":change": change, **values}),
        }
        return {"Update": update}

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        values = self.table.get(self.pk, endpoint_id) if endpoint_id != COUNT_SK else None
        return _endpoint(values) if values else None

    def endpoints(self) -> list[Endpoint]:
        found = [_endpoint(values) for values in self.table.partition(self.pk) if values[SK] != COUNT_SK]
        return sorted((e for e in found if not e.deleted), key=lambda endpoint: (endpoint.created_at, endpoint.id))

    def endpoint_secret(self, endpoint_id: str) -> str:
        values = self.table.get(self.pk, endpoint_id)
        if values is None:
            raise KeyError(endpoint_id)
        return self._cipher().open(Sealed.from_item(values["secret"]), endpoint_id).decode()

    def _cipher(self) -> EnvelopeCipher:
        if self.secret_cipher is None:
            raise RuntimeError("this function holds no webhook secret cipher")
        return self.secret_cipher

    # -- deliveries -------------------------------------------------------------------------------

    def due_events(self, now: datetime, limit: int) -> list[DueEvent]:
        answer = self.table.client.query(
            TableName=self.table.name,
            IndexName=BY_DUE.name,
            KeyConditionExpression="#due_pk = :due_pk AND #due_at <= :now",
            ExpressionAttributeNames={"#due_pk": BY_DUE.partition_key, "#due_at": BY_DUE.sort_key},
            ExpressionAttributeValues=to_item({":due_pk": due_partition(self.table.merchant), ":now": iso(now)}),
            Limit=limit,
        )
        found = map(from_item, answer["Items"])
        return [DueEvent(self.table.identifier(Partition.EVENT, v), str(v[BY_DUE.sort_key])) for v in found]

    def lease(self, due: DueEvent, until: datetime) -> Lease | None:
        values = self._update_event(
            due.event_id,
            "SET #due_at = :until",
            "#due_pk = :due_pk AND #due_at = :seen",
            {":until": iso(until), ":due_pk": due_partition(self.table.merchant), ":seen": due.due_at},
        )
        if values is None:
            return None
        delivered = frozenset(str(endpoint) for endpoint in values.get("delivered", []))
        return Lease(due.event_id, iso(until), delivered, int(values.get("rounds", 0)))

    def add_attempt(self, event: Event, attempt: Attempt) -> None:
        values = {
            PK: self.table.key(Partition.EVENT, event.id),
            SK: f"{ATTEMPT_SK}{iso(attempt.at)}#{secrets.token_hex(4)}",
            "endpoint": attempt.endpoint_id,
            "at": iso(attempt.at),
            "status": attempt.status,
            "error": attempt.error,
            "expires_at": int(event.expires_at.timestamp()),
        }
        self.table.client.put_item(
            TableName=self.table.name,
            Item=to_item(values),
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": PK},
        )

    def end_round(self, lease: Lease, delivered: frozenset[str], next_due: datetime | None) -> bool:
        fields: dict[str, Any] = {":delivered": sorted(delivered), ":rounds": lease.rounds + 1, ":lease": lease.due_at}
        expression = "SET #delivered = :delivered, #rounds = :rounds"
        if next_due is None:
            expression += " REMOVE #due_pk, #due_at"
        else:
            expression += ", #due_at = :next"
            fields[":next"] = iso(next_due)
        return self._update_event(lease.event_id, expression, "#due_at = :lease", fields) is not None

    def attempts(self, event_id: str) -> list[Attempt]:
        pk = self.table.key(Partition.EVENT, event_id)
        condition = {"KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :attempt)"}
        found = self.table.client.get_paginator("query").paginate(
            TableName=self.table.name,
            ExpressionAttributeNames={"#pk": PK, "#sk": SK},
            ExpressionAttributeValues=to_item({":pk": pk, ":attempt": ATTEMPT_SK}),
            ConsistentRead=True,
            **condition,
        )
        return [_attempt(from_item(item)) for page in found for item in page["Items"]]

    def make_due(self, event_id: str, now: datetime) -> bool:
        fields = {":due_pk": due_partition(self.table.merchant), ":now": iso(now), ":none": [], ":zero": 0}
        expression = "SET #due_pk = :due_pk, #due_at = :now, #delivered = :none, #rounds = :zero"
        return self._update_event(event_id, expression, "attribute_exists(#pk)", fields) is not None

    def _update_event(
        self, event_id: str, expression: str, condition: str, values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Update the event's item while ``condition`` holds: the item as it is then (None: it did not hold)."""
        names = {"#pk": PK, "#due_pk": BY_DUE.partition_key, "#due_at": BY_DUE.sort_key}
        names |= {"#delivered": "delivered", "#rounds": "rounds"}
        used = {name: attribute for name, attribute in names.items() if name in expression or name in condition}
        try:
            answer = self.table.client.update_item(
                TableName=self.table.name,
                Key=key_item(self.table.key(Partition.EVENT, event_id), EVENT_SK),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=used,
                ExpressionAttributeValues=to_item(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return from_item(answer["Attributes"])


def _endpoint(values: dict[str, Any]) -> Endpoint:
    return Endpoint(
        str(values[SK]),
        str(values["url"]),
        tuple(str(name) for name in values["events"]),
        parse_iso(str(values["created_at"])),
        bool(values.get("deleted")),
    )


def _attempt(values: dict[str, Any]) -> Attempt:
    status = values.get("status")
    return Attempt(
        str(values["endpoint"]),
        parse_iso(str(values["at"])),
        None if status is None else int(status),
        values.get("error"),
    )
