"""Structured JSON logs (Powertools Logger) with a last line of defence: every
serialized record is scanned, and any run of 12 or more digits (together, or
in groups parted by a space, dash, dot or slash) that stands alone is masked,
as is a CVC after the word "cvc". Digits inside an identifier (a UUID request
id, a hex payment id) are not a card number and are left alone, so a log line
can still be traced. The first line of defence is that card data is never
passed to a log call."""

import re
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from lambdas import SERVICE_NAME
from lambdas.domain.cards import CARD_DIGITS, DIGIT_RUN_SHAPE

if TYPE_CHECKING:
    from aws_lambda_powertools.logging.types import LogRecord

_CVC = re.compile(r"(?i)(cvc\W{0,5})\d{3,4}")
# A run starts where no letter, digit or digit-and-separator is before it, so each run is tried once, whole.
_UUID_OR_DIGIT_RUN = re.compile(
    r"(?P<uuid>(?<![0-9A-Za-z])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(?![0-9A-Za-z]))"
    rf"|(?<![0-9A-Za-z])(?<!\d[ ./-])(?P<run>{DIGIT_RUN_SHAPE})(?![0-9A-Za-z])"
)


def _mask(match: re.Match[str]) -> str:
    run = match["run"]
    if run is None or sum(char.isdigit() for char in run) < CARD_DIGITS.start:
        whole: str = match.group(0)
        return whole
    return "[masked]"


def mask_card_data(text: str) -> str:
    return _CVC.sub(r"\1***", _UUID_OR_DIGIT_RUN.sub(_mask, text))


class MaskingFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: "LogRecord") -> str:
        return mask_card_data(super().serialize(log))


logger = Logger(service=SERVICE_NAME, logger_formatter=MaskingFormatter())
