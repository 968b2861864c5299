"""Use-case calls on a fake world (tests.support.fakes.fake_world): cards, payments and captured payments."""

from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.tokens import CardInput
from sparkle_sandbox.server import DECLINES

VISA = "4242424242424242"
DECLINED_CARD = next(iter(DECLINES))  # a sandbox card the gateway always declines


def card(number: str = VISA, cvc: str = "737") -> CardInput:
    return CardInput(number, 12, 2030, cvc)


def pay(world, key: str = "k", amount: int = 1000, number: str = VISA, **command):
    return world.service.create_payment(PaymentCommand(amount, "usd", card=card(number), **command), "req", key)


def captured(world, amount: int = 1000) -> str:
    """The id of a new payment of ``amount`` that the gateway captured."""
    answer = pay(world, key=f"pay-{amount}-{len(world.ledger.payments)}", amount=amount)
    assert answer.status == 201
    return answer.body["id"]
