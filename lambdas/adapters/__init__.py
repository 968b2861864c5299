"""Adapters behind small interfaces: DynamoDB, KMS, the Sparkle gateway."""
