"""Vaulted cards: a token's item holds its masked card and the sealed card only the vault opens."""

from datetime import datetime
from typing import Any

from lambdas.adapters.dynamo import DynamoUnitOfWork, put_new
from lambdas.adapters.envelope import Sealed
from lambdas.adapters.ledger.chains import DynamoChainRecords
from lambdas.adapters.ledger.table import PK, SK, LedgerTable
from lambdas.domain.cards import MaskedCard
from lambdas.domain.chains import chain_of
from lambdas.domain.timestamps import iso
from lambdas.ports import StoredToken
from lambdas.storage_schema import Partition

TOKEN_SK = "TOKEN"


class DynamoTokenRecords:
    def __init__(self, table: LedgerTable, chains: DynamoChainRecords) -> None:
        self.table = table
        self.chains = chains

    def get_token(self, token_id: str, for_payment: str | None = None) -> StoredToken | None:
        """The token. With ``for_payment``, the head of that payment's chain is read in the same round trip and
        kept for the entries that settle the payment, which then need no read of their own."""
        token_key = (self.table.key(Partition.TOKEN, token_id), TOKEN_SK)
        if for_payment is None:
            values = self.table.get(*token_key)
        else:
            chain = chain_of(for_payment)
            values, head = self.table.get_together([token_key, self.chains.head_key(chain)])
            self.chains.read_ahead(chain, head)
        if values is None:
            return None
        return StoredToken(card_of(values), Sealed.from_item(values["card"]))

    def add_token(
        self, uow: DynamoUnitOfWork, token_id: str, card: MaskedCard, sealed_card: Sealed, now: datetime
    ) -> None:
        values = {
            PK: self.table.key(Partition.TOKEN, token_id),
            SK: TOKEN_SK,
            "card": sealed_card.to_item(),
            "created_at": iso(now),
            **card_values(card),
        }
        uow.add("token", put_new(self.table.name, values, PK))


def card_values(card: MaskedCard) -> dict[str, Any]:
    """A masked card as stored, in a token's item and in each payment's."""
    return {
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "fingerprint": card.fingerprint,
    }


def card_of(values: dict[str, Any]) -> MaskedCard:
    return MaskedCard(
        values["brand"], values["last4"], int(values["exp_month"]), int(values["exp_year"]), values["fingerprint"]
    )
