"""DynamoDB helpers: typed values to and from low-level items and transaction parts."""

import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import ClientError

from lambdas import deadline
from lambdas.ports import Contended, LostRace
from lambdas.storage_schema import from_item, to_item


def put_new(table: str, values: dict[str, Any], key_attribute: str) -> dict[str, Any]:
    """A transaction part that adds an item and fails if one with its key exists."""
    return {
        "Put": {
            "TableName": table,
            "Item": to_item(values),
            "ConditionExpression": "attribute_not_exists(#key)",
            "ExpressionAttributeNames": {"#key": key_attribute},
        }
    }


def update(
    table: str,
    key: dict[str, Any],
    fields: dict[str, Any],
    remove: tuple[str, ...] = (),
    condition: str = "",
    condition_values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A transaction part: ``SET`` the fields (``REMOVE`` others) if ``condition`` holds.

    Conditions name attributes as ``#name`` and values as ``:name``; every field
    is available as ``#field``.
    """
    condition_values = condition_values or {}
    names = {f"#{k}": k for k in (*fields, *remove, *_names_in(condition))}
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in fields)
    if remove:
        expression += " REMOVE " + ", ".join(f"#{k}" for k in remove)
    operation: dict[str, Any] = {
        "TableName": table,
        "Key": to_item(key),
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_item({**{f":{k}": v for k, v in fields.items()}, **condition_values}),
    }
    if condition:
        operation["ConditionExpression"] = condition
    return {"Update": operation}


def _names_in(condition: str) -> list[str]:
    return re.findall(r"#(\w+)", condition)


CONFLICT_RETRIES = 4  # DynamoDB cancels a transaction that meets another on the same item
HEAD_RETRIES = 40  # a chain head moved by another writer: the entries are placed again after the new head
Decoder = Callable[[dict[str, Any] | None], Any]
Part = tuple[str, dict[str, Any], Decoder]
MOVED_HEAD = "head"  # the label of a part whose failed condition means "read again and retry", not a lost race


def _wait_before_retry(seconds: float) -> None:
    """Wait before trying a transaction again, unless the request's time would not then cover giving up."""
    if not deadline.may_wait(seconds):
        raise Contended(f"no time left to wait {seconds:.3f} s and try the transaction again")
    time.sleep(seconds)


class Appender(Protocol):
    """Parts built afresh for each attempt, such as entries placed at the end of a chain."""

    def parts(self, reread: bool) -> list[Part]:
        """This attempt's parts; ``reread``: it follows a wait, so what the last attempt learned may be stale."""


def _returning_old(part: dict[str, Any]) -> dict[str, Any]:
    """A conditional part that reports the item it found when its condition fails (a lost race costs no read)."""
    operation = next(iter(part.values()))
    if "ConditionExpression" in operation:
        operation["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return part


class DynamoUnitOfWork:
    """Transaction parts from any of the stores, written by one ``TransactWriteItems``.

    Every conditional part asks for the item it found when its condition fails, so a lost race
    costs no extra read: ``LostRace.conflicts`` maps each failed part's label to that item,
    decoded by the store that made the part."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.parts: list[Part] = []
        self.appenders: list[Appender] = []
        self.moved_heads = 0  # attempts lost to another writer's head update (make bench-ledger counts them)

    def add(self, label: str, part: dict[str, Any], decode: Decoder = lambda item: item) -> None:
        self.parts.append((label, _returning_old(part), decode))

    def append(self, appender: Appender) -> None:
        self.appenders.append(appender)

    def _attempt_parts(self, reread: bool) -> list[Part]:
        parts = list(self.parts)
        for appender in self.appenders:
            parts += [(label, _returning_old(part), decode) for label, part, decode in appender.parts(reread)]
        return parts

    def commit(self) -> None:
        conflicts_left, heads_left = CONFLICT_RETRIES, HEAD_RETRIES
        reread = False
        while True:
            parts = self._attempt_parts(reread)
            try:
                # A token per attempt: botocore resends an attempt whose answer was lost with the same token, and
                # DynamoDB applies it once (within 10 minutes), instead of the resend meeting the first one's writes.
                self.client.transact_write_items(
                    TransactItems=[part for _, part, _ in parts], ClientRequestToken=str(uuid.uuid4())
                )
                return
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = error.response.get("CancellationReasons") or []
                failed = {
                    label: decode(from_item(reason["Item"]) if reason.get("Item") else None)
                    for (label, _, decode), reason in zip(parts, reasons, strict=False)
                    if reason.get("Code") == "ConditionalCheckFailed"
                }
                conflicts = {label: found for label, found in failed.items() if label != MOVED_HEAD}
                if conflicts:
                    raise LostRace(conflicts) from None
                if failed:  # only a head moved: place the entries after the new one
                    if not heads_left:
                        raise Contended(f"a chain head moved under {HEAD_RETRIES + 1} attempts running") from None
                    heads_left -= 1
                    self.moved_heads += 1
                    # At once after the head the failure returned. Writers that keep meeting on one head then
                    # spread out (jittered, growing, at most 0.2 s) and read it again after the wait: a head
                    # learned before waiting is stale by then, and a writer kept on it would starve.
                    reread = self.moved_heads > 1
                    if reread:
                        _wait_before_retry(random.uniform(0, min(0.2, 0.005 * 2 ** min(self.moved_heads, 6))))
                    continue
                if not any(r.get("Code") == "TransactionConflict" for r in reasons):
                    raise
                if not conflicts_left:
                    raise Contended(f"other transactions held its items {CONFLICT_RETRIES + 1} times") from None
                attempt = CONFLICT_RETRIES - conflicts_left
                conflicts_left -= 1
                reread = True  # after the wait, whatever a head was learned from is stale too
                _wait_before_retry(random.uniform(0, 0.05 * 2**attempt))  # another transaction held an item
