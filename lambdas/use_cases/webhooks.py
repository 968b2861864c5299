"""POST, GET and DELETE /webhook_endpoints, POST /events/{id}/redeliver and GET /events/{id}/deliveries.

An endpoint's secret is made here and shown once, in the answer to its creation: the answer kept for replays of the
key leaves it out, since the idempotency table is no place for a secret (a lost first answer: delete the endpoint
and make another)."""

from dataclasses import dataclass

from lambdas.domain.errors import InvalidRequest, NotFound
from lambdas.domain.ids import is_id, new_id
from lambdas.domain.webhooks import MAX_ENDPOINTS, Attempt, Endpoint, new_secret, parse_events
from lambdas.ports import LostRace, UoW
from lambdas.use_cases import Dependencies, request_digest, store_answer
from lambdas.use_cases.events import find_event
from lambdas.use_cases.idempotency import Fresh, Keyed, Replay, Resume


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: Endpoint
    secret: str | None  # None in what is kept for replays


def create_endpoint(
    deps: Dependencies[UoW], url: str, events: list[str], call: Keyed[CreatedEndpoint]
) -> CreatedEndpoint | Replay:
    digest = request_digest({"url": url, "events": list(events)})
    earlier = deps.idempotency.resume_or_replay(call.key, digest)
    if isinstance(earlier, Replay):  # the first answer, whatever the URL's host resolves to now
        return earlier
    subscribed = parse_events(events)
    deps.webhook_urls.check(url)
    endpoint = Endpoint(new_id("we"), url, subscribed, deps.clock())
    created = CreatedEndpoint(endpoint, new_secret())
    uow = deps.store.unit_of_work()
    deps.store.add_endpoint(uow, endpoint, created.secret or "", MAX_ENDPOINTS)
    try:
        begun = deps.idempotency.begin(uow, call.key, digest, endpoint.id, call.answer(CreatedEndpoint(endpoint, None)))
    except LostRace as race:
        if "endpoints" in race.conflicts:
            message = f"A merchant has at most {MAX_ENDPOINTS} webhook endpoints: delete one first."
            raise InvalidRequest(message, None, "endpoint_limit") from None
        raise
    match begun:
        case Fresh():
            return created
        case Replay():
            return begun
        case Resume():  # a completed record is never released
            raise AssertionError("endpoint keys are complete at once")


def list_endpoints(deps: Dependencies[UoW]) -> list[Endpoint]:
    return deps.store.endpoints()


def find_endpoint(deps: Dependencies[UoW], endpoint_id: str) -> Endpoint:
    """The endpoint not deleted, or a 404 that never repeats the id."""
    endpoint = deps.store.get_endpoint(endpoint_id) if is_id("we", endpoint_id) else None
    if endpoint is None or endpoint.deleted:
        raise NotFound("No such webhook endpoint.")
    return endpoint


def delete_endpoint(deps: Dependencies[UoW], endpoint_id: str) -> Endpoint:
    """Mark the endpoint deleted: no delivery reaches it after."""
    endpoint = find_endpoint(deps, endpoint_id)
    uow = deps.store.unit_of_work()
    deps.store.delete_endpoint(uow, endpoint)
    try:
        uow.commit()
    except LostRace:  # deleted meanwhile
        raise NotFound("No such webhook endpoint.") from None
    return Endpoint(endpoint.id, endpoint.url, endpoint.events, endpoint.created_at, deleted=True)


def redeliver(deps: Dependencies[UoW], event_id: str, call: Keyed[str]) -> str | Replay:
    """Make the event due again for every endpoint that subscribes to its type. The key is claimed first and
    completed after, so a retry after a crash in between makes it due again, and a replay does not. The event is
    not read (that would open its payment's metadata): only made due, while it exists."""
    if not is_id("evt", event_id):
        raise NotFound("No such event.")
    begun = deps.idempotency.begin(deps.store.unit_of_work(), call.key, request_digest({"event": event_id}), event_id)
    if isinstance(begun, Replay):
        return begun
    if not deps.store.make_due(event_id, deps.clock()):
        deps.idempotency.forget(call.key)
        raise NotFound("No such event.")
    store_answer(deps, call, event_id)
    return event_id


def deliveries(deps: Dependencies[UoW], event_id: str) -> list[Attempt]:
    """The event's delivery attempts, oldest first."""
    return deps.store.attempts(find_event(deps, event_id).id)
