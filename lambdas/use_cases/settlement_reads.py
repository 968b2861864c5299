"""GET /settlements/{id} and GET /settlements (list): the merchant's share of each gateway settlement, newest first.
A share is shown once complete (every line of its settlement imported); before that it is as unknown as another
merchant's."""

from lambdas.domain.errors import InvalidRequest, NotFound
from lambdas.domain.settlements import Share, is_settlement_id
from lambdas.ports import UoW
from lambdas.use_cases import Dependencies
from lambdas.use_cases.reads import page_size


def find_share(deps: Dependencies[UoW], settlement_id: str) -> Share:
    """The merchant's complete share of the settlement, or a 404 that never repeats the id."""
    share = deps.store.get_share(settlement_id) if is_settlement_id(settlement_id) else None
    if share is None or not share.complete:
        raise NotFound("No such settlement.")
    return share


def list_shares(deps: Dependencies[UoW], limit: str | None, starting_after: str | None) -> tuple[list[Share], bool]:
    """A page of the merchant's complete shares, newest settlement first; ``starting_after`` is the previous page's
    last id."""
    size = page_size(limit)
    cursor = None
    if starting_after is not None:
        try:
            cursor = find_share(deps, starting_after)
        except NotFound:  # an unknown id, an incomplete share and another merchant's alike; the id is not repeated
            raise InvalidRequest(
                "starting_after must be the id of one of your settlements.", "starting_after"
            ) from None
    return deps.store.list_shares(size, cursor)
