"""Scheduled: delivers every merchant's due events to its webhook endpoints, and dead-letters those never delivered,
within the function's time."""

from typing import Any

from lambdas import deadline
from lambdas.bootstrap import adapters
from lambdas.logs import logger
from lambdas.metrics import record_deliveries


def handler(event: dict[str, Any], context: object) -> dict[str, float]:
    deadline.start_from(context)
    wired = adapters()
    counts = wired.tenancy().deliver(wired.webhook_sender(), wired.dead_letters(), wired.delivery_settings())
    logger.info("delivered", extra=counts)
    record_deliveries(counts)
    return counts
