"""The payment domain in plain Python: cards, money, rules, payments and their
ledger. Nothing here knows about boto3, HTTP or Lambda."""
