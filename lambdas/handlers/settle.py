"""Scheduled: imports the gateway's new settlements and matches them against every merchant's ledger, within the
function's time (a settlement not finished is taken on by the next run from where this one stopped)."""

from typing import Any

from lambdas import deadline
from lambdas.bootstrap import adapters
from lambdas.logs import logger
from lambdas.metrics import record_settlements


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    deadline.start_from(context)
    wired = adapters()
    counts = wired.tenancy().settle(wired.gateway, wired.settlement_imports())
    logger.info("settlements imported", extra=counts)
    record_settlements(counts)
    return counts
