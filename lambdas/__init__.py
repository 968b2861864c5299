"""Lambda code of the payment ledger service: one package, one module per concern."""
