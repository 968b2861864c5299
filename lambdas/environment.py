"""The functions' environment: every variable a function reads, as one type. The stack writes it
(``to_variables``: a Lambda function's ``environment``), ``lambdas.bootstrap`` reads it (``from_environ``), and
``tools.function_resources`` provisions what it names for the service tests and `make local`.

Each field is read from the variable of its name in capitals (``ledger_table``: ``LEDGER_TABLE``). An optional
field whose variable is unset or empty is None, and is left out of the variables written."""

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, get_args, get_type_hints


@dataclass(frozen=True)
class FunctionEnvironment:
    ledger_table: str
    idempotency_table: str
    merchants_table: str
    vault_key_id: str
    fingerprint_key_id: str
    signing_key_id: str
    gateway_secret_id: str
    gateway_base_url: str
    # How the gateway client waits and retries (stacks.config.GatewaySettings); None: the client's default.
    gateway_connect_timeout: float | None = None  # seconds
    gateway_read_timeout: float | None = None  # seconds
    gateway_attempts: int | None = None
    gateway_backoff: float | None = None  # seconds
    # Read by Powertools' logger and metrics (the namespace: lambdas.metrics.NAMESPACE_VARIABLE).
    powertools_service_name: str | None = None
    powertools_metrics_namespace: str | None = None
    # Where the checkpoint function keeps its write-once copy: the bucket deployed, a directory under `make local`.
    checkpoint_bucket: str | None = None
    checkpoint_archive_dir: str | None = None
    # Webhook delivery: the dead-letter queue of events never delivered (the delivery function's only), the waits
    # between rounds of attempts (seconds, comma-separated; None: lambdas.domain.webhooks.DEFAULT_RETRY_WAITS), how
    # long a round holds its event, and whether endpoints may be http://127.0.0.1:<port>/ (1: `make local` only).
    webhook_dead_letter_queue: str | None = None
    webhook_retry_waits: str | None = None
    webhook_lease_seconds: float | None = None
    webhook_loopback_http: int | None = None

    @staticmethod
    def variable(field_name: str) -> str:
        return field_name.upper()

    def to_variables(self) -> dict[str, str]:
        """The variables that are set, as a Lambda function's environment holds them."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return {self.variable(name): str(value) for name, value in values.items() if value is not None}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "FunctionEnvironment":
        """The environment ``environ`` holds; a required variable it lacks raises ``KeyError``."""
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = cls.variable(field.name)
            if field.default is MISSING:
                values[field.name] = environ[name]
            elif environ.get(name):
                parse = next(kind for kind in get_args(hints[field.name]) if kind is not type(None))
                values[field.name] = parse(environ[name])
        return cls(**values)
