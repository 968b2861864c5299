"""The card vault: card data sealed under the vault key, fingerprints keyed with the HMAC key.

Plain card data exists only in memory, inside ``Card`` objects that print masked."""

import base64
import json
from typing import Any

from lambdas.adapters.envelope import EnvelopeCipher, Sealed
from lambdas.domain.cards import Card, CardNumber, MaskedCard


class CardVault:
    def __init__(self, kms: Any, fingerprint_key_id: str, cipher: EnvelopeCipher) -> None:
        self.kms = kms
        self.fingerprint_key_id = fingerprint_key_id
        self.cipher = cipher

    def fingerprint(self, number: CardNumber) -> str:
        """A keyed hash of the number: stable per card, useless without the KMS key."""
        mac = self.kms.generate_mac(
            KeyId=self.fingerprint_key_id, MacAlgorithm="HMAC_SHA_256", Message=number.digits.encode()
        )["Mac"]
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def mask(self, card: Card, fingerprint: str) -> MaskedCard:
        return MaskedCard(card.number.brand, card.number.last4, card.exp_month, card.exp_year, fingerprint)

    def seal(self, token_id: str, card: Card) -> Sealed:
        plaintext = {
            "number": card.number.digits,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "holder_name": card.holder_name,
        }
        return self.cipher.seal(json.dumps(plaintext).encode(), token_id)

    def open(self, token_id: str, sealed: Sealed) -> Card:
        values = json.loads(self.cipher.open(sealed, token_id))
        return Card(CardNumber(values["number"]), values["exp_month"], values["exp_year"], values.get("holder_name"))
