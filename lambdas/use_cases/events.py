"""GET /events/{id} and GET /events (list): the merchant's events, newest first, of one type when asked."""

from lambdas.domain.errors import InvalidRequest, NotFound
from lambdas.domain.events import Event, EventType
from lambdas.domain.ids import is_id
from lambdas.ports import UoW
from lambdas.use_cases import Dependencies
from lambdas.use_cases.reads import page_size


def find_event(deps: Dependencies[UoW], event_id: str) -> Event:
    """The event, or a 404 that never repeats the id (another merchant's is as unknown as one never made)."""
    event = deps.store.get_event(event_id) if is_id("evt", event_id) else None
    if event is None:
        raise NotFound("No such event.")
    return event


def list_events(
    deps: Dependencies[UoW], limit: str | None, starting_after: str | None, event_type: str | None
) -> tuple[list[Event], bool]:
    """A page of the merchant's events, newest first, of ``event_type`` only when given; ``starting_after`` is the
    previous page's last id."""
    size = page_size(limit)
    of_type = None
    if event_type is not None:
        try:
            of_type = EventType(event_type)
        except ValueError:
            types = ", ".join(t.value for t in EventType)
            raise InvalidRequest(f"type must be one of {types}.", "type") from None
    cursor = None
    if starting_after is not None:
        try:
            cursor = find_event(deps, starting_after)
        except NotFound:  # an unknown id and another merchant's alike; the id is not repeated
            raise InvalidRequest("starting_after must be the id of one of your events.", "starting_after") from None
    return deps.store.list_events(size, cursor, of_type)
