"""Scheduled: settles payments left pending by lost gateway answers."""

from typing import Any

from lambdas.bootstrap import service
from lambdas.logs import logger


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    counts = service().reconcile()
    logger.info("reconciled", extra=counts)
    return counts
