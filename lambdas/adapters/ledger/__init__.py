"""The ledger table's records, one module per family: tokens, payments and refunds, ledger entries and their
chains, checkpoints, and the listing of payments. Each family's store reads and writes its items and keeps their
codecs (domain object to DynamoDB item and back) beside it; ``lambdas.adapters.ledger_store`` composes them."""
