"""Scheduled: a signed checkpoint of every merchant's ledger that moved since its last, within the function's
time."""

from typing import Any

from lambdas import deadline
from lambdas.bootstrap import tenancy
from lambdas.logs import logger
from lambdas.metrics import record_checkpoints


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    deadline.start_from(context)
    counts = tenancy().write_checkpoints()
    logger.info("checkpointed", extra=counts)
    record_checkpoints(counts)
    return counts
