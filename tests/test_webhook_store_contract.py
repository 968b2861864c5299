"""One contract for the webhook records (``lambdas.ports.WebhookRecords``), run against the in-memory fakes and the
DynamoDB adapter (moto in process): endpoints capped and only marked deleted, secrets bound to their endpoint, an
event leased by one run at a time, a round that a redelivery overtook not recorded, attempts kept."""

import uuid
from dataclasses import dataclass
from datetime import timedelta

import boto3
import pytest

from lambdas.adapters.envelope import EnvelopeCipher
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.domain.cards import MaskedCard
from lambdas.domain.events import payment_event
from lambdas.domain.payments import Payment, Status
from lambdas.domain.webhooks import Attempt, Endpoint
from lambdas.encryption_context import Purpose
from lambdas.ports import LostRace
from tests.support.fakes import FakeClock, FakeDatabase, FakeLedgerStore

CARD = MaskedCard("visa", "4242", 12, 2030, "fp_1")


@dataclass
class Stores:
    store: object
    other: object  # another merchant's, on the same table
    clock: FakeClock


@pytest.fixture(params=["fake", pytest.param("dynamodb", marks=pytest.mark.integration)])
def stores(request) -> Stores:
    clock = FakeClock()
    if request.param == "fake":
        db = FakeDatabase()
        return Stores(FakeLedgerStore(db, "merchant-a"), FakeLedgerStore(db, "merchant-b"), clock)
    env = request.getfixturevalue("moto_resources")
    dynamodb, kms = boto3.client("dynamodb"), boto3.client("kms")
    metadata = EnvelopeCipher(kms, env["VAULT_KEY_ID"], Purpose.METADATA)
    secrets = EnvelopeCipher(kms, env["VAULT_KEY_ID"], Purpose.WEBHOOK_SECRET)

    def store(merchant: str) -> DynamoLedgerStore:
        return DynamoLedgerStore(dynamodb, env["LEDGER_TABLE"], metadata, merchant, secret_cipher=secrets)

    return Stores(store("merchant-a"), store("merchant-b"), clock)


def endpoint(stores: Stores, url: str = "https://hooks.example.com/in") -> Endpoint:
    return Endpoint(f"we_{uuid.uuid4().hex[:24]}", url, ("*",), stores.clock())


def add(stores: Stores, made: Endpoint, secret: str = "whsec_1", limit: int = 16, store=None) -> None:
    store = store or stores.store
    uow = store.unit_of_work()
    store.add_endpoint(uow, made, secret, limit)
    uow.commit()


def event(stores: Stores):
    """An event written as the outbox writes it: due at once."""
    payment = Payment(f"pay_{uuid.uuid4().hex[:24]}", 1000, "USD", CARD, stores.clock(), status=Status.SUCCEEDED)
    made = payment_event(payment, stores.clock())
    uow = stores.store.unit_of_work()
    stores.store.add_payment(uow, payment)
    stores.store.add_event(uow, made)
    uow.commit()
    return made


def test_endpoints_are_capped_and_a_deleted_one_frees_its_place(stores):
    first, second = endpoint(stores), endpoint(stores)
    add(stores, first, limit=1)
    with pytest.raises(LostRace) as race:
        add(stores, second, limit=1)
    assert "endpoints" in race.value.conflicts
    uow = stores.store.unit_of_work()
    stores.store.delete_endpoint(uow, first)
    uow.commit()
    add(stores, second, limit=1)
    assert [e.id for e in stores.store.endpoints()] == [second.id]
    assert stores.store.get_endpoint(first.id).deleted  # marked, not removed
    uow = stores.store.unit_of_work()
    stores.store.delete_endpoint(uow, first)
    with pytest.raises(LostRace):  # deleted once only
        uow.commit()


def test_a_secret_opens_for_its_endpoint_and_another_merchant_sees_no_endpoint(stores):
    made = endpoint(stores)
    add(stores, made, secret="whsec_abc")
    assert stores.store.endpoint_secret(made.id) == "whsec_abc"
    assert stores.other.endpoints() == [] and stores.other.get_endpoint(made.id) is None


def test_an_event_is_due_at_once_and_leased_by_one_run_only(stores):
    made = event(stores)
    (due,) = stores.store.due_events(stores.clock(), 10)
    assert due.event_id == made.id
    lease = stores.store.lease(due, stores.clock() + timedelta(minutes=2))
    assert lease is not None and lease.rounds == 0 and lease.delivered == frozenset()
    assert stores.store.lease(due, stores.clock() + timedelta(minutes=2)) is None  # the other run
    assert stores.store.due_events(stores.clock(), 10) == []  # leased: not due until the lease runs out
    stores.clock.advance(timedelta(minutes=3))
    (again,) = stores.store.due_events(stores.clock(), 10)
    assert stores.store.lease(again, stores.clock() + timedelta(minutes=2)) is not None
    assert stores.other.due_events(stores.clock(), 10) == []


def test_a_round_ends_due_later_then_out_of_the_index_and_attempts_are_kept(stores):
    made = event(stores)
    (due,) = stores.store.due_events(stores.clock(), 10)
    lease = stores.store.lease(due, stores.clock() + timedelta(minutes=2))
    stores.store.add_attempt(made, Attempt("we_1", stores.clock(), 500))
    stores.store.add_attempt(made, Attempt("we_2", stores.clock(), None, "timeout"))
    assert stores.store.end_round(lease, frozenset({"we_3"}), stores.clock() + timedelta(minutes=1))
    stores.clock.advance(timedelta(minutes=1, seconds=1))
    (due,) = stores.store.due_events(stores.clock(), 10)
    lease = stores.store.lease(due, stores.clock() + timedelta(minutes=2))
    assert lease.rounds == 1 and lease.delivered == frozenset({"we_3"})
    assert stores.store.end_round(lease, frozenset({"we_3", "we_1"}), None)
    stores.clock.advance(timedelta(days=1))
    assert stores.store.due_events(stores.clock(), 10) == []
    attempts = stores.store.attempts(made.id)
    assert {(a.endpoint_id, a.status, a.error) for a in attempts} == {("we_1", 500, None), ("we_2", None, "timeout")}


def test_a_redelivery_overtakes_a_running_round(stores):
    made = event(stores)
    (due,) = stores.store.due_events(stores.clock(), 10)
    lease = stores.store.lease(due, stores.clock() + timedelta(minutes=2))
    stores.clock.advance(timedelta(seconds=1))
    assert stores.store.make_due(made.id, stores.clock())
    assert not stores.store.end_round(lease, frozenset({"we_1"}), None)  # the redelivery's round comes next
    (due,) = stores.store.due_events(stores.clock(), 10)
    assert stores.store.lease(due, stores.clock() + timedelta(minutes=2)).delivered == frozenset()
    assert not stores.other.make_due(made.id, stores.clock())  # another merchant's event is unknown
