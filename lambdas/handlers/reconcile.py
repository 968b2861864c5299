"""Scheduled: settles payments left pending by lost gateway answers."""

from lambdas.bootstrap import service
from lambdas.logs import logger


def handler(event: dict, context: object) -> dict:
    counts = service().reconcile()
    logger.info("reconciled", extra=counts)
    return counts
