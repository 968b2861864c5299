"""The purposes data is encrypted for under the vault key: the one place the Lambda code (which
puts them in the KMS encryption context) and the stack (whose grants are conditioned on them) read them from."""

from enum import StrEnum

CONTEXT_KEY = "purpose"  # the encryption-context key that names the purpose
CONDITION_KEY = f"kms:EncryptionContext:{CONTEXT_KEY}"  # the IAM condition key that reads it


class Purpose(StrEnum):
    CARD = "card-vault"  # vaulted cards
    METADATA = "payment-metadata"  # payment metadata, and stored answers that carry it
    WEBHOOK_SECRET = "webhook-secret"  # the secrets webhook deliveries are signed with
