"""Lambda code of the payment ledger service: one package, one module per concern."""

SERVICE_NAME = "payment-ledger"  # in logs, tags and traces
