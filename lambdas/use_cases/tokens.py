"""POST /tokens: vault a card."""

from dataclasses import dataclass

from lambdas.domain.cards import parse_card
from lambdas.domain.errors import InvalidRequest
from lambdas.domain.ids import new_id
from lambdas.ports import Answer, Fresh, Replay, Resume, UoW
from lambdas.presenters import token_body
from lambdas.use_cases import Dependencies, request_digest


@dataclass(frozen=True)
class CardInput:
    number: str
    exp_month: int
    exp_year: int
    cvc: str | None = None
    holder_name: str | None = None


def tokenize(deps: Dependencies[UoW], given: CardInput, key: str | None) -> Answer:
    if given.cvc is not None:
        raise InvalidRequest("A CVC is never stored: send it only with a payment.", "card.cvc", "cvc_not_accepted")
    now = deps.clock()
    card = parse_card(given.number, given.exp_month, given.exp_year, now.date(), "card", holder_name=given.holder_name)
    token_id = new_id("tok")
    masked = deps.vault.mask(card, deps.vault.fingerprint(card.number))
    answer = Answer(201, token_body(token_id, masked, now))
    uow = deps.store.unit_of_work()
    deps.store.add_token(uow, token_id, masked, deps.vault.seal(token_id, card), now)
    if key is None:
        uow.commit()
        return answer
    digest = request_digest(
        {
            "card": {
                "fingerprint": masked.fingerprint,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
                "holder_name": card.holder_name,
            }
        }
    )
    match deps.idempotency.begin(uow, key, digest, token_id, answer):
        case Fresh():
            return answer
        case Replay(answer=earlier):
            return earlier
        case Resume():  # a completed record is never released, so a token's key cannot be resumed
            raise AssertionError("token keys are complete at once")
