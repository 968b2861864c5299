"""Request bodies as pydantic models: strict types, unknown fields refused.

These are the edge's types; the OpenAPI description and the functions' validators
(``lambdas.request_bodies``: each model's core schema, run by pydantic_core alone) are
generated from them by `make openapi`.
An error's ``param`` is the path of the field pydantic names; a member whose
name holds a card number (a metadata key, an unknown field) is named by its
position among its object's members as sent, from 0: ``metadata[2]``, or
``[0]`` at the top of the body (``lambdas.domain.cards.member_param``)."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from lambdas.body_checks import one_of_token_or_card


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)


class TokenCard(_Strict):
    number: str = Field(max_length=32)
    exp_month: int
    exp_year: int
    holder_name: str | None = Field(default=None, max_length=200)
    cvc: str | None = Field(default=None, max_length=8, description="Refused: a CVC is never stored")


class TokenRequest(_Strict):
    card: TokenCard


class PaymentCard(_Strict):
    number: str = Field(max_length=32)
    exp_month: int
    exp_year: int
    cvc: str = Field(max_length=8)


class Source(_Strict):
    token: str | None = Field(default=None, min_length=1, max_length=64)
    card: PaymentCard | None = None

    exactly_one = model_validator(mode="after")(one_of_token_or_card)


MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=40)]
MetadataValue = Annotated[str, StringConstraints(max_length=500)]


class PaymentRequest(_Strict):
    amount: int
    currency: str = Field(min_length=3, max_length=3)
    source: Source
    description: str | None = Field(default=None, max_length=500)
    metadata: dict[MetadataKey, MetadataValue] | None = Field(default=None, max_length=20)
    capture: bool = Field(default=True, description="false: only authorise the card, and capture it later")


class RefundRequest(_Strict):
    amount: int | None = None


class CaptureRequest(_Strict):
    amount: int | None = Field(default=None, description="at most amount_capturable; default: all of it")


class CancelRequest(_Strict):
    """No members: the body is ``{}``."""


class WebhookEndpointRequest(_Strict):
    url: str = Field(min_length=1, max_length=2048, description="https, naming a public address")
    events: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        min_length=1, max_length=32, description='event types, or ["*"] for all'
    )


class RedeliverRequest(_Strict):
    """No members: the body is ``{}``."""
