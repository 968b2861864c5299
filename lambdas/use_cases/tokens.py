"""POST /tokens: vault a card."""

from dataclasses import dataclass
from datetime import datetime

from lambdas.domain.cards import MaskedCard, parse_card
from lambdas.domain.errors import InvalidRequest
from lambdas.domain.ids import new_id
from lambdas.ports import UoW
from lambdas.use_cases import Dependencies, request_digest
from lambdas.use_cases.idempotency import Fresh, Keyed, Replay, Resume


@dataclass(frozen=True)
class CardInput:
    number: str
    exp_month: int
    exp_year: int
    cvc: str | None = None
    holder_name: str | None = None


@dataclass(frozen=True)
class Token:
    """A vaulted card as its token shows it."""

    id: str
    card: MaskedCard
    created_at: datetime


def tokenize(deps: Dependencies[UoW], given: CardInput, call: Keyed[Token] | None) -> Token | Replay:
    if given.cvc is not None:
        raise InvalidRequest("A CVC is never stored: send it only with a payment.", "card.cvc", "cvc_not_accepted")
    now = deps.clock()
    card = parse_card(given.number, given.exp_month, given.exp_year, now.date(), "card", holder_name=given.holder_name)
    token = Token(new_id("tok"), deps.vault.mask(card, deps.vault.fingerprint(card.number)), now)
    uow = deps.store.unit_of_work()
    deps.store.add_token(uow, token.id, token.card, deps.vault.seal(token.id, card), now)
    if call is None:
        uow.commit()
        return token
    digest = request_digest(
        {
            "card": {
                "fingerprint": token.card.fingerprint,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
                "holder_name": card.holder_name,
            }
        }
    )
    begun = deps.idempotency.begin(uow, call.key, digest, token.id, call.answer(token))
    match begun:
        case Fresh():
            return token
        case Replay():
            return begun
        case Resume():  # a completed record is never released, so a token's key cannot be resumed
            raise AssertionError("token keys are complete at once")
