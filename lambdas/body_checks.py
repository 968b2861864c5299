"""What a request body must hold that its members' types cannot say: shared by the pydantic models
(``lambdas.models``) and the validators compiled from them (``lambdas.request_bodies``)."""

from typing import Protocol, TypeVar


class _Source(Protocol):
    @property
    def token(self) -> str | None: ...

    @property
    def card(self) -> object | None: ...


Source = TypeVar("Source", bound=_Source)


def one_of_token_or_card(source: Source) -> Source:
    """A payment's source names a token or a card, never both nor neither."""
    if (source.token is None) == (source.card is None):
        raise ValueError("source takes either token or card")
    return source
