"""Structured JSON logs (Powertools Logger) with a last line of defence: every
serialized record is scanned, and any run of 12–19 digits (spaced, dashed or
not) is masked, as is a CVC after the word "cvc". The first line of defence is
that card data is never passed to a log call."""

import re

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from lambdas.domain.cards import DIGIT_RUN

_CVC = re.compile(r"(?i)(cvc\W{0,5})\d{3,4}")


def mask_card_data(text: str) -> str:
    return _CVC.sub(r"\1***", DIGIT_RUN.sub("[masked]", text))


class MaskingFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: dict) -> str:
        return mask_card_data(super().serialize(log))


logger = Logger(service="payment-ledger", logger_formatter=MaskingFormatter())
