"""Who acts for which merchant (``lambdas.ports.MerchantDirectory``): items in the merchants table that Terraform
writes from the configuration, read with a per-container cache.

A principal item maps an acting principal or an account id to a merchant id; a merchant item holds the
merchant's rules (the environment's defaults merged with its own, at synth). Answers, unmapped principals
included, are kept for ``max_age`` seconds: a configuration change reaches every container within that time."""

import json
import time
from collections.abc import Callable
from typing import Any

from lambdas.domain.merchants import Caller, Merchant, lookup_keys
from lambdas.domain.rules import RuleSet
from lambdas.storage_schema import MERCHANTS, MerchantRecord, from_item, to_item

CACHE_SECONDS = 60.0
CACHE_ENTRIES = 10_000  # the oldest answer goes first: callers minting new principals cannot grow it without end
PK = MERCHANTS.partition_key


class DynamoMerchantDirectory:
    def __init__(
        self,
        client: Any,
        table: str,
        max_age: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = CACHE_ENTRIES,
    ) -> None:
        self.client = client
        self.table = table
        self.max_age = max_age
        self.clock = clock
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def merchant_for(self, caller: Caller) -> Merchant | None:
        for key in lookup_keys(caller):
            mapped = self._item(MerchantRecord.PRINCIPAL.key(key))
            if mapped is not None:
                return self.merchant(mapped["merchant"])
        return None

    def merchant(self, merchant_id: str) -> Merchant | None:
        values = self._item(MerchantRecord.MERCHANT.key(merchant_id))
        return _merchant_of(values) if values is not None else None

    def merchants(self) -> list[Merchant]:
        """Every configured merchant (a scan: for the scheduled jobs, not for requests)."""
        pages = self.client.get_paginator("scan").paginate(
            TableName=self.table,
            FilterExpression="begins_with(#pk, :merchant)",
            ExpressionAttributeNames={"#pk": PK},
            ExpressionAttributeValues=to_item({":merchant": MerchantRecord.MERCHANT.value}),
        )
        found = [_merchant_of(from_item(item)) for page in pages for item in page["Items"]]
        return sorted(found, key=lambda merchant: merchant.id)

    def _item(self, pk: str) -> dict[str, Any] | None:
        now = self.clock()
        cached = self._cache.get(pk)
        if cached is not None and cached[0] > now:
            return cached[1]
        item = self.client.get_item(TableName=self.table, Key=to_item({PK: pk}))
        values = from_item(item["Item"]) if "Item" in item else None
        self._cache.pop(pk, None)
        self._cache[pk] = (now + self.max_age, values)
        if len(self._cache) > self.max_entries:
            del self._cache[next(iter(self._cache))]
        return values


def _merchant_of(values: dict[str, Any]) -> Merchant:
    return Merchant(values["id"], RuleSet.from_config(json.loads(values["rules"])), values.get("api_key_id") or None)
