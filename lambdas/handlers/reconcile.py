"""Scheduled: settles every merchant's payments and refunds left pending by lost gateway answers, within the
function's time."""

from typing import Any

from lambdas import deadline
from lambdas.bootstrap import tenancy
from lambdas.logs import logger
from lambdas.metrics import record_reconcile


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    deadline.start_from(context)
    counts = tenancy().reconcile()
    logger.info("reconciled", extra=counts)
    record_reconcile(counts)
    return counts
