"""The functions' environment as one type: what the stack writes is what bootstrap reads back."""

from dataclasses import MISSING, fields

import pytest

from lambdas.environment import FunctionEnvironment

DEPLOYED = FunctionEnvironment(
    ledger_table="payments-dev-ledger",
    idempotency_table="payments-dev-idempotency",
    merchants_table="payments-dev-merchants",
    vault_key_id="arn:aws:kms:us-east-1:123456789012:key/vault",
    fingerprint_key_id="arn:aws:kms:us-east-1:123456789012:key/fingerprint",
    signing_key_id="arn:aws:kms:us-east-1:123456789012:key/signing",
    gateway_secret_id="arn:aws:secretsmanager:us-east-1:123456789012:secret:sparkle",
    gateway_base_url="https://api.sparkle.internal",
    gateway_connect_timeout=1.0,
    gateway_read_timeout=4.0,
    gateway_attempts=2,
    gateway_backoff=0.2,
    powertools_service_name="payment-ledger",
    powertools_metrics_namespace="PaymentLedger/dev",
    checkpoint_bucket="payments-dev-checkpoints-123456789012",
)


def test_what_the_stack_writes_reads_back_the_same():
    variables = DEPLOYED.to_variables()
    assert variables["GATEWAY_ATTEMPTS"] == "2" and variables["GATEWAY_READ_TIMEOUT"] == "4.0"
    assert FunctionEnvironment.from_environ(variables) == DEPLOYED


def test_each_field_is_the_variable_of_its_name_and_unset_ones_are_left_out():
    required = {f.name.upper(): f"value-of-{f.name}" for f in fields(FunctionEnvironment) if f.default is MISSING}
    environment = FunctionEnvironment.from_environ(required | {"GATEWAY_BACKOFF": "", "UNRELATED": "x"})
    assert environment.to_variables() == required
    assert (environment.gateway_backoff, environment.checkpoint_archive_dir) == (None, None)


def test_a_required_variable_missing_is_named():
    variables = DEPLOYED.to_variables()
    del variables["LEDGER_TABLE"]
    with pytest.raises(KeyError, match="LEDGER_TABLE"):
        FunctionEnvironment.from_environ(variables)
