"""Constructs and stacks of the payment ledger service."""
