"""One contract for the storage ports, run against the in-memory fakes and the
DynamoDB adapters (moto in process): what the fakes promise, DynamoDB keeps."""

import os
import time
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas import deadline
from lambdas.adapters import dynamo
from lambdas.adapters.dynamo import CONFLICT_RETRIES, HEAD_RETRIES, DynamoUnitOfWork, from_item, to_item
from lambdas.adapters.envelope import EnvelopeCipher, Sealed
from lambdas.adapters.idempotency import DynamoIdempotencyStore
from lambdas.adapters.ledger.events import due_partition, event_key
from lambdas.adapters.ledger.payments import PENDING_SHARDS
from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.adapters.velocity import DynamoVelocityCounter
from lambdas.domain.cards import MaskedCard
from lambdas.domain.chains import CHAINS, chain_of, check_chain
from lambdas.domain.checkpoints import Checkpoint
from lambdas.domain.errors import IdempotencyConflict
from lambdas.domain.events import EVENT_RETENTION, Event, EventType, payment_event, refund_event, settlement_event
from lambdas.domain.idempotency import IN_FLIGHT_SECONDS
from lambdas.domain.payments import (
    HOLD,
    HOLD_OFFSET,
    MERCHANT,
    RECEIVABLE,
    Action,
    ActionKind,
    CancellationReason,
    Payment,
    Refund,
    RefundStatus,
    Status,
    balance,
)
from lambdas.domain.settlements import Mismatch, MismatchReason, Share
from lambdas.domain.timestamps import iso
from lambdas.ports import Answer, Contended, LostRace, MisfiledCheckpoint, PendingItem
from lambdas.storage_schema import BY_DUE, LEDGER, Partition
from lambdas.use_cases.idempotency import Fresh, IdempotencyKeys, Replay, Resume
from tests.support.fakes import FakeClock, FakeDatabase, FakeIdempotencyStore, FakeLedgerStore, FakeVelocityCounter
from tests.support.leaks import card_data_in_item

CARD = MaskedCard("visa", "4242", 12, 2030, "fp_1")


@dataclass
class Ports:
    store: object
    idempotency: object
    velocity: object
    clock: FakeClock
    other_store: object  # another merchant's, on the same table
    other_velocity: object


@pytest.fixture(params=["fake", pytest.param("dynamodb", marks=pytest.mark.integration)])
def ports(request) -> Ports:
    clock = FakeClock()
    if request.param == "fake":
        db = FakeDatabase()
        return Ports(
            FakeLedgerStore(db, "merchant-a"),
            IdempotencyKeys(FakeIdempotencyStore(db), clock.epoch),
            FakeVelocityCounter(db, "merchant-a"),
            clock,
            FakeLedgerStore(db, "merchant-b"),
            FakeVelocityCounter(db, "merchant-b"),
        )
    env = request.getfixturevalue("moto_resources")
    dynamodb, kms = boto3.client("dynamodb"), boto3.client("kms")
    cipher = EnvelopeCipher(kms, env["VAULT_KEY_ID"], "payment-metadata")
    return Ports(
        DynamoLedgerStore(dynamodb, env["LEDGER_TABLE"], cipher, "merchant-a", page_size=3),
        IdempotencyKeys(DynamoIdempotencyStore(dynamodb, env["IDEMPOTENCY_TABLE"], cipher), clock.epoch),
        DynamoVelocityCounter(dynamodb, env["IDEMPOTENCY_TABLE"], "merchant-a"),
        clock,
        DynamoLedgerStore(dynamodb, env["LEDGER_TABLE"], cipher, "merchant-b", page_size=3),
        DynamoVelocityCounter(dynamodb, env["IDEMPOTENCY_TABLE"], "merchant-b"),
    )


def payment(ports: Ports, amount: int = 1000, payment_id: str | None = None, **fields) -> Payment:
    return Payment(payment_id or f"pay_{uuid.uuid4().hex[:8]}", amount, "USD", CARD, ports.clock(), **fields)


def commit(ports: Ports, *adds) -> None:
    uow = ports.store.unit_of_work()
    for add in adds:
        add(uow)
    uow.commit()


def captured(ports: Ports, amount: int = 1000) -> Payment:
    new = payment(ports, amount, metadata={"order": "A-1"})
    commit(ports, lambda uow: ports.store.add_payment(uow, new))
    settled, entries = new.succeed("ch_1", ports.clock())
    commit(ports, lambda uow: ports.store.settle_payment(uow, new, settled, entries))
    return ports.store.get_payment(new.id)


# -- units of work -------------------------------------------------------------------------


def test_a_unit_of_work_applies_all_parts_or_none(ports):
    first, second = payment(ports), payment(ports)
    commit(ports, lambda uow: ports.store.add_payment(uow, first))
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.add_payment(uow, second), lambda uow: ports.store.add_payment(uow, first))
    assert set(lost.value.conflicts) == {"payment"}
    assert ports.store.get_payment(second.id) is None


def test_a_payment_leaves_pending_once_and_the_loser_sees_the_winner(ports):
    new = payment(ports)
    commit(ports, lambda uow: ports.store.add_payment(uow, new))
    settled, entries = new.succeed("ch_1", ports.clock())
    commit(ports, lambda uow: ports.store.settle_payment(uow, new, settled, entries))
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.settle_payment(uow, new, new.fail(), []))
    assert lost.value.conflicts["payment"].status is Status.SUCCEEDED
    stored = ports.store.get_payment(new.id)
    assert (stored.status, stored.charge_id) == (Status.SUCCEEDED, "ch_1")
    assert len(ports.store.entries(new.id)) == 2


def test_a_declined_payment_reads_back_with_its_decline_code_and_charge(ports):
    new = payment(ports)
    commit(ports, lambda uow: ports.store.add_payment(uow, new))
    commit(ports, lambda uow: ports.store.settle_payment(uow, new, new.decline("insufficient_funds", "ch_9"), []))
    stored = ports.store.get_payment(new.id)
    assert (stored.status, stored.decline_code, stored.charge_id) == (Status.DECLINED, "insufficient_funds", "ch_9")


def test_metadata_is_returned_only_when_asked_for(ports):
    new = captured(ports)
    assert new.metadata == {"order": "A-1"}
    assert ports.store.get_payment(new.id, with_metadata=False).metadata == {}


# -- refunds ---------------------------------------------------------------------------------


def test_a_reservation_holds_only_while_that_much_is_left(ports):
    new = captured(ports, 1000)
    _, first = new.reserve_refund("re_1", 700, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, new, first))
    _, second = new.reserve_refund("re_2", 400, ports.clock())  # checked against a stale read: 1000 left
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.reserve_refund(uow, new, second))
    found = lost.value.conflicts["payment"]
    assert (found.amount_reserved, found.refundable_amount) == (700, 300)
    assert ports.store.get_refund(new.id, "re_2") is None


def test_a_refund_is_completed_or_cancelled_once(ports):
    new = captured(ports, 1000)
    _, refund = new.reserve_refund("re_1", 600, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, new, refund))
    reserved = ports.store.get_payment(new.id)
    _, done, entries = reserved.complete_refund(refund, "rf_1", ports.clock())
    commit(ports, lambda uow: ports.store.complete_refund(uow, done, entries))
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.cancel_refund(uow, refund.fail()))
    assert lost.value.conflicts["refund"].status is RefundStatus.SUCCEEDED
    after = ports.store.get_payment(new.id)
    assert (after.amount_refunded, after.amount_reserved, after.display_status) == (600, 0, Status.PARTIALLY_REFUNDED)
    assert ports.store.get_refund(new.id, "re_1").gateway_refund_id == "rf_1"


def test_a_cancelled_refund_frees_its_reservation(ports):
    new = captured(ports, 1000)
    _, refund = new.reserve_refund("re_1", 1000, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, new, refund))
    assert ports.store.get_payment(new.id).refundable_amount == 0
    commit(ports, lambda uow: ports.store.cancel_refund(uow, refund.fail()))
    after = ports.store.get_payment(new.id)
    assert (after.refundable_amount, after.amount_refunded) == (1000, 0)
    assert ports.store.get_refund(new.id, "re_1").status is RefundStatus.FAILED


def test_every_pending_payment_and_refund_is_listed_across_pages(ports):
    pending = [payment(ports) for _ in range(7)]
    for new in pending:
        commit(ports, lambda uow, new=new: ports.store.add_payment(uow, new))
    new = captured(ports)
    _, refund = new.reserve_refund("re_1", 10, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, new, refund))
    ports.clock.advance(timedelta(minutes=1))
    listed = set(ports.store.pending(ports.clock()))
    assert listed == {PendingItem(p.id, p.created_at) for p in pending} | {
        PendingItem(new.id, refund.created_at, "re_1")
    }
    assert set(ports.store.pending(ports.clock() - timedelta(hours=1))) == set()
    for before in pending[:2]:  # what left pending is listed no more
        after, entries = before.succeed("ch_2", ports.clock())
        uow = ports.store.unit_of_work()
        ports.store.settle_payment(uow, before, after, entries)
        uow.commit()
    _, done, entries = new.complete_refund(refund, "rf_1", ports.clock())
    commit(ports, lambda uow: ports.store.complete_refund(uow, done, entries))
    assert set(ports.store.pending(ports.clock())) == {PendingItem(p.id, p.created_at) for p in pending[2:]}


def test_pending_items_spread_over_the_merchants_index_partitions_and_every_one_is_listed(moto_resources):
    """No one partition of the pending index takes every payment's two writes; what was pending in the single
    partition used before shards is still listed."""
    client = boto3.client("dynamodb")
    store = DynamoLedgerStore(client, moto_resources["LEDGER_TABLE"], None, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    pending = [payment(ports) for _ in range(24)]
    for new in pending:
        commit(ports, lambda uow, new=new: store.add_payment(uow, new))
    before_shards = next(p for p in pending if chain_of(p.id) % PENDING_SHARDS)
    single = f"{Status.PENDING.value}#merchant-a"  # the key before shards
    key = to_item({"pk": Partition.PAYMENT.key(store.merchant, before_shards.id), "sk": "PAYMENT"})
    client.update_item(TableName=moto_resources["LEDGER_TABLE"], Key=key, UpdateExpression="SET status_pk = :single",
                       ExpressionAttributeValues=to_item({":single": single}))  # fmt: skip
    partitions = {
        from_item(item)["status_pk"]
        for item in client.scan(TableName=moto_resources["LEDGER_TABLE"], IndexName="by_status")["Items"]
    }
    assert len(partitions) > PENDING_SHARDS // 2 and all(
        p.startswith(f"{Status.PENDING.value}#merchant-a") for p in partitions
    )
    ports.clock.advance(timedelta(minutes=1))
    assert set(store.pending(ports.clock())) == {PendingItem(p.id, p.created_at) for p in pending}


# -- idempotency -------------------------------------------------------------------------------


def begin(ports: Ports, key: str, digest: str, resource: str = "pay_1", answer: Answer | None = None):
    return ports.idempotency.begin(ports.store.unit_of_work(), key, digest, resource, answer)


def complete(ports: Ports, key: str, answer: Answer) -> None:
    commit(ports, lambda uow: ports.idempotency.complete(uow, key, answer))


def test_a_key_is_fresh_then_in_flight_then_replayed(ports):
    assert begin(ports, "k", "d") == Fresh()
    with pytest.raises(IdempotencyConflict) as in_flight:
        begin(ports, "k", "d", "pay_2")
    assert (in_flight.value.status, in_flight.value.code) == (409, "idempotency_key_in_use")
    complete(ports, "k", Answer(201, {"id": "pay_1", "metadata": {"order": "A-1"}}))
    assert begin(ports, "k", "d", "pay_3") == Replay(Answer(201, {"id": "pay_1", "metadata": {"order": "A-1"}}, True))


def test_a_key_with_another_body_is_422_even_in_flight(ports):
    begin(ports, "k", "d")
    with pytest.raises(IdempotencyConflict) as reused:
        begin(ports, "k", "other")
    assert reused.value.status == 422


def test_a_released_or_abandoned_key_resumes_its_object_once(ports):
    begin(ports, "released", "d", "pay_1")
    ports.idempotency.release("released")
    assert begin(ports, "released", "d", "pay_9") == Resume("pay_1")
    with pytest.raises(IdempotencyConflict):  # the resumer holds it now
        begin(ports, "released", "d", "pay_9")
    begin(ports, "abandoned", "d", "pay_2")
    ports.clock.advance(timedelta(minutes=2))
    assert begin(ports, "abandoned", "d", "pay_9") == Resume("pay_2")


class _RivalFirst:
    """A DynamoDB client on which ``rival`` runs just before the first conditional take-over of a record: the
    moment between reading a released record and taking it over."""

    def __init__(self, client, rival) -> None:
        self._client, self._rival = client, rival

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def update_item(self, **params):
        if ":was_until" in params.get("ExpressionAttributeValues", {}) and self._rival is not None:
            rival, self._rival = self._rival, None
            rival()
        return self._client.update_item(**params)


def test_of_two_retries_taking_over_one_released_key_only_the_first_resumes_its_object(moto_resources):
    dynamodb, clock = boto3.client("dynamodb"), FakeClock()
    cipher = EnvelopeCipher(boto3.client("kms"), moto_resources["VAULT_KEY_ID"], "payment-metadata")
    ledger = DynamoLedgerStore(dynamodb, moto_resources["LEDGER_TABLE"], cipher, "merchant-a")
    table = moto_resources["IDEMPOTENCY_TABLE"]
    first = IdempotencyKeys(DynamoIdempotencyStore(dynamodb, table, cipher), clock.epoch)
    first.begin(ledger.unit_of_work(), "k", "d", "pay_1")
    first.release("k")
    rival_got = []
    late = IdempotencyKeys(
        DynamoIdempotencyStore(
            _RivalFirst(dynamodb, lambda: rival_got.append(first.begin(ledger.unit_of_work(), "k", "d", "pay_2"))),
            table,
            cipher,
        ),
        clock.epoch,
    )
    with pytest.raises(IdempotencyConflict) as conflict:
        late.begin(ledger.unit_of_work(), "k", "d", "pay_3")
    assert (conflict.value.status, conflict.value.code) == (409, "idempotency_key_in_use")
    assert rival_got == [Resume("pay_1")]


def test_releasing_a_key_no_request_holds_changes_nothing(ports):
    begin(ports, "k", "d", "pay_1")
    complete(ports, "k", Answer(201, {"id": "pay_1"}))
    ports.idempotency.release("k")  # late: the answer was stored meanwhile
    assert begin(ports, "k", "d", "pay_2") == Replay(Answer(201, {"id": "pay_1"}, True))
    ports.idempotency.release("never-used")
    assert begin(ports, "never-used", "d", "pay_3") == Fresh()


def test_a_claim_is_held_for_exactly_its_in_flight_time(ports):
    begin(ports, "k", "d", "pay_1")
    ports.clock.advance(timedelta(seconds=IN_FLIGHT_SECONDS))
    with pytest.raises(IdempotencyConflict):
        begin(ports, "k", "d", "pay_2")
    ports.clock.advance(timedelta(seconds=1))
    assert begin(ports, "k", "d", "pay_2") == Resume("pay_1")


def test_an_expired_key_starts_fresh_at_once(ports):
    begin(ports, "k", "d", answer=Answer(201, {"id": "tok_1"}))
    ports.clock.advance(timedelta(hours=24, seconds=1))
    assert begin(ports, "k", "another body", "pay_2") == Fresh()
    with pytest.raises(IdempotencyConflict):
        begin(ports, "k", "another body")


def test_a_lost_claim_writes_nothing_else(ports):
    begin(ports, "k", "d")
    new = payment(ports)
    uow = ports.store.unit_of_work()
    ports.store.add_payment(uow, new)
    with pytest.raises(IdempotencyConflict):
        ports.idempotency.begin(uow, "k", "d", new.id)
    assert ports.store.get_payment(new.id) is None


def test_require_idle_fails_while_a_request_holds_the_key(ports):
    begin(ports, "k", "d")
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.idempotency.require_idle(uow, "k"))
    assert set(lost.value.conflicts) == {"idempotency"}
    ports.clock.advance(timedelta(minutes=2))  # abandoned
    commit(ports, lambda uow: ports.idempotency.require_idle(uow, "k"))
    commit(ports, lambda uow: ports.idempotency.require_idle(uow, "never-used"))


def test_the_velocity_count_stops_at_the_limit_within_the_hour(ports):
    for _ in range(2):
        commit(ports, lambda uow: ports.velocity.count(uow, "fp", ports.clock(), 2))
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.velocity.count(uow, "fp", ports.clock(), 2))
    assert set(lost.value.conflicts) == {"velocity"}
    commit(ports, lambda uow: ports.velocity.count(uow, "another fp", ports.clock(), 2))
    ports.clock.advance(timedelta(hours=1))
    commit(ports, lambda uow: ports.velocity.count(uow, "fp", ports.clock(), 2))


@pytest.fixture
def host_time_zone():
    """Sets the process's local time zone (a POSIX TZ string) for one test."""
    before = os.environ.get("TZ")

    def set_zone(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_the_velocity_hour_is_the_utc_hour_whatever_the_hosts_time_zone(ports, host_time_zone):
    host_time_zone("IST-05:30")  # local hours start at half past the UTC hour
    hour = ports.clock().replace(minute=0, second=0, microsecond=0)
    commit(ports, lambda uow: ports.velocity.count(uow, "fp", hour + timedelta(minutes=20), 1))
    with pytest.raises(LostRace):  # 40 past: the same UTC hour, though another local one
        commit(ports, lambda uow: ports.velocity.count(uow, "fp", hour + timedelta(minutes=40), 1))
    commit(ports, lambda uow: ports.velocity.count(uow, "fp", hour + timedelta(minutes=60), 1))


def test_dynamodb_units_of_work_ask_for_the_item_a_failed_condition_met():
    uow = DynamoUnitOfWork(client=None)
    uow.add("x", {"Put": {"TableName": "t", "Item": {}, "ConditionExpression": "attribute_not_exists(pk)"}})
    uow.add("y", {"Put": {"TableName": "t", "Item": {}}})
    assert [part["Put"].get("ReturnValuesOnConditionCheckFailure") for _, part, _ in uow.parts] == ["ALL_OLD", None]


def test_a_refund_reads_back_as_it_was_written(ports):
    new = captured(ports, 1000)
    _, refund = new.reserve_refund("re_1", 600, ports.clock(), idempotency_id="key-1")
    commit(ports, lambda uow: ports.store.reserve_refund(uow, new, refund))
    assert ports.store.get_refund(new.id, "re_1") == refund
    _, done, entries = ports.store.get_payment(new.id).complete_refund(refund, "rf_1", ports.clock())
    commit(ports, lambda uow: ports.store.complete_refund(uow, done, entries))
    assert ports.store.get_refund(new.id, "re_1") == done


def test_a_payment_reads_back_with_the_key_record_of_the_request_that_made_it(ports):
    new = payment(ports, idempotency_id="key-1")
    commit(ports, lambda uow: ports.store.add_payment(uow, new))
    assert ports.store.get_payment(new.id).idempotency_id == "key-1"
    settle(ports, ports.store, new)
    assert ports.store.get_payment(new.id).idempotency_id == "key-1"


def test_a_cancelled_reservation_can_be_taken_again_whole(ports):
    new = captured(ports, 1000)
    _, first = new.reserve_refund("re_1", 1000, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, new, first))
    commit(ports, lambda uow: ports.store.cancel_refund(uow, first.fail()))
    released = ports.store.get_payment(new.id)
    _, second = released.reserve_refund("re_2", 1000, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, released, second))
    assert ports.store.get_payment(new.id).amount_reserved == 1000


def test_a_forgotten_key_is_free_and_a_released_one_resumes(ports):
    begin(ports, "forgotten", "d", "re_1")
    ports.idempotency.forget("forgotten")
    assert begin(ports, "forgotten", "another body", "re_2") == Fresh()
    begin(ports, "released", "d", "re_3")
    ports.idempotency.release("released")
    assert ports.idempotency.resume_or_replay("released", "d") == Resume("re_3")
    complete(ports, "released", Answer(201, {"id": "re_3"}))
    ports.idempotency.forget("released")  # only a key in flight is ever forgotten
    assert ports.idempotency.resume_or_replay("released", "d") == Replay(Answer(201, {"id": "re_3"}, True))


def test_a_key_reused_with_another_body_names_the_conflict(ports):
    begin(ports, "k", "d", answer=Answer(201, {"id": "tok_1"}))
    with pytest.raises(IdempotencyConflict) as reused:
        ports.idempotency.resume_or_replay("k", "other")
    assert (reused.value.status, reused.value.code) == (422, "idempotency_key_reused")


# -- merchants ------------------------------------------------------------------------------


def test_a_merchants_store_reaches_none_of_another_merchants_records(ports):
    paid = captured(ports)
    _, refund = paid.reserve_refund("re_1", 300, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, paid, refund))
    commit(ports, lambda uow: ports.store.add_token(uow, "tok_1", CARD, Sealed(b"key", b"nonce", b"ct"), ports.clock()))
    stuck = payment(ports)
    commit(ports, lambda uow: ports.store.add_payment(uow, stuck))
    later = ports.clock() + timedelta(hours=1)
    assert ports.store.get_payment(paid.id) is not None and ports.store.get_token("tok_1") is not None
    other = ports.other_store
    assert other.get_payment(paid.id) is None and other.get_payment(stuck.id) is None
    assert other.get_refund(paid.id, refund.id) is None
    assert other.get_token("tok_1") is None
    assert other.entries(paid.id) == []
    assert list(other.pending(later)) == []
    assert sorted(ports.store.pending(later), key=str) == sorted(
        [PendingItem(stuck.id, stuck.created_at), PendingItem(paid.id, refund.created_at, refund.id)], key=str
    )


def test_a_merchant_may_reuse_an_id_another_merchant_holds(ports):
    mine = payment(ports)
    commit(ports, lambda uow: ports.store.add_payment(uow, mine))
    commit(ports, lambda uow: ports.other_store.add_payment(uow, replace(mine, amount=5)))
    assert ports.store.get_payment(mine.id).amount == mine.amount
    assert ports.other_store.get_payment(mine.id).amount == 5


def test_each_merchant_counts_its_own_velocity(ports):
    now = ports.clock()
    commit(ports, lambda uow: ports.velocity.count(uow, "fp_1", now, 1))
    commit(ports, lambda uow: ports.other_velocity.count(uow, "fp_1", now, 1))
    with pytest.raises(LostRace):
        commit(ports, lambda uow: ports.velocity.count(uow, "fp_1", now, 1))


# -- a token payment's reads ---------------------------------------------------------------


def on_one_chain(count: int) -> list[str]:
    """Payment ids whose entries share a chain."""
    ids = (f"pay_{n:024d}" for n in range(100_000))
    first = next(ids)
    return [first, *[i for i in ids if chain_of(i) == chain_of(first)][: count - 1]]


def settle(ports: Ports, store, paid: Payment) -> None:
    settled, entries = paid.succeed(f"ch_{paid.id}", ports.clock())
    commit(ports, lambda uow: store.settle_payment(uow, paid, settled, entries))


def test_a_token_read_for_a_payment_is_the_token_and_stays_the_merchants(ports):
    commit(ports, lambda uow: ports.store.add_token(uow, "tok_1", CARD, Sealed(b"key", b"nonce", b"ct"), ports.clock()))
    assert ports.store.get_token("tok_1", for_payment="pay_1") == ports.store.get_token("tok_1")
    assert ports.store.get_token("tok_1", for_payment="pay_1").card == CARD
    assert ports.other_store.get_token("tok_1", for_payment="pay_1") is None
    assert ports.store.get_token("tok_2", for_payment="pay_1") is None


class DynamoRequests:
    """The DynamoDB operations a client sends, in order."""

    def __init__(self, client) -> None:
        self.sent: list[str] = []
        client.meta.events.register("before-call.dynamodb.*", self._record)

    def _record(self, event_name: str, **_) -> None:
        self.sent.append(event_name.rsplit(".", 1)[1])


def _chained(store: DynamoLedgerStore, ids: list[str]) -> None:
    chain = chain_of(ids[0])
    entries = sorted((e for i in ids for e in store.entries(i)), key=lambda e: e.sequence)
    assert [e.sequence for e in entries] == list(range(1, len(entries) + 1))
    assert check_chain(store.merchant, chain, entries, store.chains.head(chain)) is None


def test_a_token_payment_reads_once_its_token_and_its_chains_head(moto_resources):
    client = boto3.client("dynamodb")
    store = DynamoLedgerStore(client, moto_resources["LEDGER_TABLE"], None, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    earlier, paid_by_token = (payment(ports, payment_id=i) for i in on_one_chain(2))
    commit(ports, lambda uow: store.add_payment(uow, earlier))
    settle(ports, store, earlier)  # the chain's head exists, past sequence 0
    commit(ports, lambda uow: store.add_token(uow, "tok_1", CARD, Sealed(b"key", b"nonce", b"ct"), ports.clock()))
    requests = DynamoRequests(client)
    assert store.get_token("tok_1", for_payment=paid_by_token.id).card == CARD
    commit(ports, lambda uow: store.add_payment(uow, paid_by_token))
    settle(ports, store, paid_by_token)
    assert requests.sent == ["BatchGetItem", "TransactWriteItems", "TransactWriteItems"]
    _chained(store, [earlier.id, paid_by_token.id])


class _Wrapped:
    """A DynamoDB client with some of its operations changed by a subclass, the others passed through."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name: str):
        return getattr(self._client, name)


def _settled_after_a_rival(moto_resources, wrap=_Wrapped) -> tuple[list[str], DynamoLedgerStore, list[str]]:
    """A token payment whose chain head was read ahead, then moved by a rival's entries, settled: the requests its
    settling made, its store, and both payments' ids (the rival's first). ``wrap``: the payment's client."""
    client = boto3.client("dynamodb")
    table = moto_resources["LEDGER_TABLE"]
    store = DynamoLedgerStore(wrap(client), table, None, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    mine, rivals = (payment(ports, payment_id=i) for i in on_one_chain(2))
    commit(ports, lambda uow: store.add_token(uow, "tok_1", CARD, Sealed(b"key", b"nonce", b"ct"), ports.clock()))
    store.get_token("tok_1", for_payment=mine.id)  # the chain is empty: its head, read ahead, is sequence 0
    for p in (mine, rivals):
        commit(ports, lambda uow, p=p: store.add_payment(uow, p))
    settle(ports, DynamoLedgerStore(client, table, None, "merchant-a"), rivals)  # the head moves on
    requests = DynamoRequests(client)
    settle(ports, store, mine)
    return requests.sent, store, [rivals.id, mine.id]


def test_entries_follow_a_head_that_moved_after_it_was_read_ahead_without_reading_it_again(moto_resources):
    sent, store, ids = _settled_after_a_rival(moto_resources)
    assert sent == ["TransactWriteItems", "TransactWriteItems"]  # one lost to the moved head, no GetItem
    _chained(store, ids)
    assert store.chains.head(chain_of(ids[0])).sequence == 4


class _DropsTheItemsMet(_Wrapped):
    """A client whose cancelled transactions report their failed conditions without the items met."""

    def transact_write_items(self, **request):
        try:
            return self._client.transact_write_items(**request)
        except ClientError as error:
            for reason in error.response.get("CancellationReasons", []):
                reason.pop("Item", None)
            raise


def test_a_head_that_moved_unreported_is_read_again_and_the_entries_follow_it(moto_resources):
    sent, store, ids = _settled_after_a_rival(moto_resources, _DropsTheItemsMet)
    assert sent == ["TransactWriteItems", "GetItem", "TransactWriteItems"]
    _chained(store, ids)


class _LeavesTheFirstKeyUnprocessed(_Wrapped):
    """A DynamoDB client under load: BatchGetItem answers all but the first key, which it leaves unprocessed."""

    def batch_get_item(self, RequestItems):
        ((table, request),) = RequestItems.items()
        first, *rest = request["Keys"]
        answer = self._client.batch_get_item(RequestItems={table: {**request, "Keys": rest}})
        return answer | {"UnprocessedKeys": {table: {**request, "Keys": [first]}}}


def test_a_key_batch_get_leaves_unprocessed_is_read_on_its_own(moto_resources):
    client = boto3.client("dynamodb")
    store = DynamoLedgerStore(_LeavesTheFirstKeyUnprocessed(client), moto_resources["LEDGER_TABLE"], None, "m-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    commit(ports, lambda uow: store.add_token(uow, "tok_1", CARD, Sealed(b"key", b"nonce", b"ct"), ports.clock()))
    requests = DynamoRequests(client)
    assert store.get_token("tok_1", for_payment="pay_1").card == CARD
    assert requests.sent == ["BatchGetItem", "GetItem"]


# -- what a lost race reports, and what reads back -------------------------------------------


def test_a_token_id_is_taken_once(ports):
    commit(ports, lambda uow: ports.store.add_token(uow, "tok_1", CARD, Sealed(b"key", b"nonce", b"ct"), ports.clock()))
    other_card = replace(CARD, last4="0005", fingerprint="fp_2")
    with pytest.raises(LostRace) as lost:
        commit(
            ports,
            lambda uow: ports.store.add_token(uow, "tok_1", other_card, Sealed(b"k2", b"n2", b"c2"), ports.clock()),
        )
    assert set(lost.value.conflicts) == {"token"}
    assert ports.store.get_token("tok_1").card == CARD


def test_a_refund_id_is_taken_once_and_the_loser_reserves_nothing(ports):
    new = captured(ports, 1000)
    _, first = new.reserve_refund("re_1", 300, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, new, first))
    current = ports.store.get_payment(new.id)
    _, again = current.reserve_refund("re_1", 200, ports.clock())
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.reserve_refund(uow, current, again))
    assert set(lost.value.conflicts) == {"refund"}
    assert ports.store.get_payment(new.id).amount_reserved == 300
    assert ports.store.get_refund(new.id, "re_1") == first


def test_a_checkpoints_sequence_is_taken_once(ports):
    def checkpoint(root: str) -> Checkpoint:
        body = {"sequence": 1, "root": root, "created_at": "2026-01-01T00:00:00Z", "key_id": "k", "algorithm": "a"}
        return Checkpoint(body | {"signature": f"signed {root}"}, [{"chain": 0, "sequence": 2, "hash": root}])

    first = checkpoint("r1")
    commit(ports, lambda uow: ports.store.add_checkpoint(uow, first))
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.add_checkpoint(uow, checkpoint("r2")))
    assert set(lost.value.conflicts) == {"checkpoint"}
    assert ports.store.latest_checkpoint() == first


def test_checkpoints_are_read_one_by_its_sequence_and_listed_newest_first_page_by_page(ports):
    def checkpoint(sequence: int) -> Checkpoint:
        body = {"sequence": sequence, "root": f"r{sequence}", "created_at": "2026-01-01T00:00:00Z", "key_id": "k"}
        return Checkpoint(body | {"signature": "s"}, [{"chain": 0, "sequence": sequence, "hash": f"h{sequence}"}])

    made = [checkpoint(n) for n in range(1, 13)]  # sequences 10 to 12 sort after 9 only as numbers
    for each in made:
        commit(ports, lambda uow, each=each: ports.store.add_checkpoint(uow, each))
    assert ports.store.checkpoint(11) == made[10] and ports.store.checkpoint(13) is None
    assert ports.other_store.checkpoint(1) is None and ports.other_store.list_checkpoints(10, None) == ([], False)
    assert ports.store.list_checkpoints(5, None) == (made[:6:-1], True)
    assert ports.store.list_checkpoints(5, 8) == (made[6:1:-1], True)
    assert ports.store.list_checkpoints(5, 3) == ([made[1], made[0]], False)
    assert ports.store.list_checkpoints(2, 3) == ([made[1], made[0]], False)


def _file_again(ports: Ports, sequence: int, under: int) -> None:
    """The checkpoint stored under ``sequence`` copied, as it is, under ``under``'s key (table access)."""
    if isinstance(ports.store, FakeLedgerStore):
        ports.store.ledger.checkpoints[under] = ports.store.ledger.checkpoints[sequence]
        return
    client, table = ports.store.client, ports.store.table
    key = {"pk": Partition.CHECKPOINT.key("merchant-a", "checkpoints"), "sk": f"CHECKPOINT#{sequence:012d}"}
    item = client.get_item(TableName=table, Key=to_item(key), ConsistentRead=True)["Item"]
    client.put_item(TableName=table, Item=item | to_item({"sk": f"CHECKPOINT#{under:012d}"}))


def test_a_checkpoint_stored_under_another_ones_sequence_is_refused_by_every_read(ports):
    body = {"sequence": 1, "root": "r1", "created_at": "2026-01-01T00:00:00Z", "key_id": "k", "signature": "s"}
    commit(ports, lambda uow: ports.store.add_checkpoint(uow, Checkpoint(body, [])))
    _file_again(ports, 1, under=999_999)
    reads = [ports.store.latest_checkpoint, lambda: list(ports.store.checkpoints()),
             lambda: ports.store.checkpoint(999_999), lambda: ports.store.list_checkpoints(5, None)]  # fmt: skip
    for read in reads:
        with pytest.raises(MisfiledCheckpoint) as misfiled:
            read()
        assert (misfiled.value.sort_key, misfiled.value.sequence) == ("CHECKPOINT#000000999999", 1)
    assert ports.store.checkpoint(1) == Checkpoint(body, [])


def test_settling_or_reserving_on_a_payment_never_stored_loses_finding_nothing(ports):
    never_stored = payment(ports)
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.settle_payment(uow, never_stored, never_stored.fail(), []))
    assert lost.value.conflicts == {"payment": None}
    settled, _ = never_stored.succeed("ch_1", ports.clock())
    _, refund = settled.reserve_refund("re_1", 100, ports.clock())
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.reserve_refund(uow, settled, refund))
    assert lost.value.conflicts == {"payment": None}
    assert ports.store.get_refund(never_stored.id, "re_1") is None


def test_completing_or_cancelling_a_refund_never_reserved_loses_finding_nothing(ports):
    new = captured(ports, 1000)
    never_reserved = Refund("re_1", new.id, 400, ports.clock())
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.cancel_refund(uow, never_reserved.fail()))
    assert lost.value.conflicts == {"refund": None}
    _, done, entries = new.complete_refund(never_reserved, "rf_1", ports.clock())
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.complete_refund(uow, done, entries))
    assert lost.value.conflicts == {"refund": None}
    after = ports.store.get_payment(new.id)
    assert (after.refundable_amount, after.amount_refunded, after.amount_reserved) == (1000, 0, 0)
    assert len(ports.store.entries(new.id)) == 2  # the capture's own, no refund's


def refunded(ports: Ports, amount: int) -> tuple[Payment, Refund, Refund, list]:
    """A captured payment of 1000 with a refund of ``amount`` reserved and completed: the payment as captured, the
    refund as reserved, as completed, and its entries."""
    new = captured(ports, 1000)
    _, refund = new.reserve_refund("re_1", amount, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, new, refund))
    _, done, entries = ports.store.get_payment(new.id).complete_refund(refund, "rf_1", ports.clock())
    commit(ports, lambda uow: ports.store.complete_refund(uow, done, entries))
    return new, refund, done, entries


def test_a_refund_that_lost_its_race_is_reported_as_stored(ports):
    new, refund, done, _ = refunded(ports, 600)
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.cancel_refund(uow, refund.fail()))
    assert lost.value.conflicts["refund"] == ports.store.get_refund(new.id, "re_1") == done


def test_a_refunds_entries_read_back_naming_the_refund(ports):
    new, _, _, entries = refunded(ports, 600)
    named = {entry.id: entry.refund_id for entry in ports.store.entries(new.id)}
    assert {entry.id: named.get(entry.id) for entry in entries} == {entry.id: "re_1" for entry in entries}
    assert sum(1 for refund_id in named.values() if refund_id is None) == 2  # the capture's own entries


def test_the_store_holds_a_reservation_to_what_is_left_whatever_the_caller_checked(ports):
    new = captured(ports, 1000)
    too_much = Refund("re_1", new.id, new.amount + 1, ports.clock())  # a caller that skipped the domain's check
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.reserve_refund(uow, new, too_much))
    assert lost.value.conflicts["payment"].refundable_amount == 1000
    assert ports.store.get_refund(new.id, "re_1") is None
    _, whole = new.reserve_refund("re_2", None, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, new, whole))
    assert ports.store.get_payment(new.id).refundable_amount == 0


def test_a_payment_written_before_reservations_reserves_exactly_the_refund(moto_resources):
    client = boto3.client("dynamodb")
    store = DynamoLedgerStore(client, moto_resources["LEDGER_TABLE"], None, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    new = payment(ports)
    commit(ports, lambda uow: store.add_payment(uow, new))
    settle(ports, store, new)
    key = to_item({"pk": Partition.PAYMENT.key("merchant-a", new.id), "sk": "PAYMENT"})
    client.update_item(  # as it was before refunds were reserved: nothing reserved, no amount left kept
        TableName=moto_resources["LEDGER_TABLE"], Key=key, UpdateExpression="REMOVE refundable_left, amount_reserved"
    )
    old = store.get_payment(new.id)
    _, refund = old.reserve_refund("re_1", 300, ports.clock())
    commit(ports, lambda uow: store.reserve_refund(uow, old, refund))
    after = store.get_payment(new.id)
    assert (after.amount_reserved, after.refundable_amount) == (300, 700)


# -- transactions cancelled by another transaction -------------------------------------------


class _ConflictsFirst(_Wrapped):
    """A DynamoDB client whose first ``times`` TransactWriteItems are cancelled because another transaction held
    one of their items (``TransactionConflict``), as DynamoDB does when two transactions meet."""

    def __init__(self, client, times: int) -> None:
        super().__init__(client)
        self.left = times

    def transact_write_items(self, TransactItems, **request):
        if self.left:
            self.left -= 1
            reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
            reasons += [{"Code": "None"}] * (len(TransactItems) - 1)
            error = {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}
            raise ClientError({"Error": error, "CancellationReasons": reasons}, "TransactWriteItems")
        return self._client.transact_write_items(TransactItems=TransactItems, **request)


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The waits the unit of work asks for between attempts (not waited), each at the top of its jitter."""
    asked: list[float] = []
    monkeypatch.setattr(dynamo, "time", SimpleNamespace(sleep=asked.append))
    monkeypatch.setattr(dynamo, "random", SimpleNamespace(uniform=lambda low, high: float(high)))
    return asked


def test_a_transaction_cancelled_by_a_conflict_is_tried_again_and_commits(moto_resources, waits):
    client = _ConflictsFirst(boto3.client("dynamodb"), times=2)
    store = DynamoLedgerStore(client, moto_resources["LEDGER_TABLE"], None, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    new = payment(ports)
    commit(ports, lambda uow: store.add_payment(uow, new))
    assert store.get_payment(new.id).amount == new.amount
    assert client.left == 0 and len(waits) == 2


def test_conflicts_cost_a_transaction_under_a_second_of_waiting_then_it_gives_up(moto_resources, waits):
    client = _ConflictsFirst(boto3.client("dynamodb"), times=CONFLICT_RETRIES)
    store = DynamoLedgerStore(client, moto_resources["LEDGER_TABLE"], None, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    committed = payment(ports)
    commit(ports, lambda uow: store.add_payment(uow, committed))  # every retry used
    assert store.get_payment(committed.id) is not None
    assert len(waits) == CONFLICT_RETRIES and sum(waits) < 1  # the request's deadline keeps a 2 s reserve
    assert waits == sorted(waits)  # growing
    client.left = CONFLICT_RETRIES + 1
    given_up = payment(ports)
    with pytest.raises(Contended):
        commit(ports, lambda uow: store.add_payment(uow, given_up))
    assert store.get_payment(given_up.id) is None


class _HeadMovesFirst(_Wrapped):
    """A DynamoDB client whose first ``times`` TransactWriteItems are cancelled because the chain head they update
    (their last part) was moved by another writer, without reporting the head it met."""

    def __init__(self, client, times: int) -> None:
        super().__init__(client)
        self.left = times
        self.attempts = 0

    def transact_write_items(self, TransactItems, **request):
        self.attempts += 1
        if self.left:
            self.left -= 1
            reasons = [{"Code": "None"}] * (len(TransactItems) - 1) + [{"Code": "ConditionalCheckFailed"}]
            error = {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}
            raise ClientError({"Error": error, "CancellationReasons": reasons}, "TransactWriteItems")
        return self._client.transact_write_items(TransactItems=TransactItems, **request)


def test_entries_follow_a_moving_head_a_bounded_number_of_times_then_it_gives_up(moto_resources, waits):
    client = _HeadMovesFirst(boto3.client("dynamodb"), times=0)
    store = DynamoLedgerStore(client, moto_resources["LEDGER_TABLE"], None, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    settled, given_up = payment(ports), payment(ports)
    commit(ports, lambda uow: store.add_payment(uow, settled), lambda uow: store.add_payment(uow, given_up))
    client.left, client.attempts = HEAD_RETRIES, 0
    settle(ports, store, settled)  # every retry used
    assert client.attempts == HEAD_RETRIES + 1 and store.get_payment(settled.id).status is Status.SUCCEEDED
    assert max(waits) <= 0.2  # each wait between attempts is short, whoever keeps winning the head
    client.left, client.attempts = HEAD_RETRIES + 1, 0
    with pytest.raises(Contended):
        settle(ports, store, given_up)
    assert client.attempts == HEAD_RETRIES + 1
    assert store.get_payment(given_up.id).status is Status.PENDING and store.entries(given_up.id) == []


@pytest.mark.parametrize(
    ("wrap", "waited"),
    [(_HeadMovesFirst, [0.02, 0.04, 0.08]), (_ConflictsFirst, [0.05, 0.1])],
    ids=["head", "conflict"],
)
def test_near_the_functions_timeout_a_commit_stops_waiting_for_its_turn_while_giving_up_still_fits(
    moto_resources, waits, wrap, waited
):
    client = wrap(boto3.client("dynamodb"), times=0)
    store = DynamoLedgerStore(client, moto_resources["LEDGER_TABLE"], None, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    pending = payment(ports)
    commit(ports, lambda uow: store.add_payment(uow, pending))
    client.left = HEAD_RETRIES  # every attempt meets another writer, as long as retries last
    # the gateway calls used the request's time: 0.15 s of the write reserve is left for waiting, the rest for giving up
    deadline.start(deadline.GIVE_UP_SECONDS + 0.15)
    with pytest.raises(Contended):
        settle(ports, store, pending)
    assert waits == waited  # each at the top of its jitter: the next one would not have fitted
    assert store.get_payment(pending.id).status is Status.PENDING and store.entries(pending.id) == []


class _Tokens(_Wrapped):
    """The ClientRequestToken of every TransactWriteItems sent."""

    def __init__(self, client) -> None:
        super().__init__(client)
        self.tokens: list[str] = []

    def transact_write_items(self, **request):
        self.tokens.append(request["ClientRequestToken"])
        return self._client.transact_write_items(**request)


def test_every_attempt_of_a_transaction_carries_its_own_client_request_token(moto_resources, waits):
    """botocore resends an attempt whose answer was lost with its token, so DynamoDB applies it once; a new attempt,
    with other parts, needs a new token (the same one with other parts is refused as a mismatch)."""
    moving = _HeadMovesFirst(boto3.client("dynamodb"), times=0)
    tokens = _Tokens(moving)
    store = DynamoLedgerStore(tokens, moto_resources["LEDGER_TABLE"], None, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    paid = payment(ports)
    commit(ports, lambda uow: store.add_payment(uow, paid))
    moving.left = 2  # the settling transaction meets a moved head twice, then commits
    settle(ports, store, paid)
    assert len(tokens.tokens) == 4 == len(set(tokens.tokens))  # the payment's, then three settling attempts
    assert all(uuid.UUID(token) for token in tokens.tokens)
    assert store.get_payment(paid.id).status is Status.SUCCEEDED


def test_after_waiting_out_a_conflict_the_head_is_read_again(moto_resources, waits):
    client = boto3.client("dynamodb")
    conflicting = _ConflictsFirst(client, times=0)
    store = DynamoLedgerStore(conflicting, moto_resources["LEDGER_TABLE"], None, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    paid_by_token = payment(ports)
    commit(ports, lambda uow: store.add_token(uow, "tok_1", CARD, Sealed(b"key", b"nonce", b"ct"), ports.clock()))
    store.get_token("tok_1", for_payment=paid_by_token.id)  # the head read ahead
    commit(ports, lambda uow: store.add_payment(uow, paid_by_token))
    conflicting.left = 1  # the settling transaction meets another one, and waits
    requests = DynamoRequests(client)
    settle(ports, store, paid_by_token)
    assert len(waits) == 1 and requests.sent == ["GetItem", "TransactWriteItems"]  # the cancelled one never reached
    _chained(store, [paid_by_token.id])


def test_the_hash_at_a_chain_position_is_its_entrys_and_stays_the_merchants(ports):
    first, second = on_one_chain(2)
    for payment_id in (first, second):
        made = payment(ports, payment_id=payment_id)
        commit(ports, lambda uow, made=made: ports.store.add_payment(uow, made))
        settle(ports, ports.store, made)
    chain = chain_of(first)
    entries = sorted((e for i in (first, second) for e in ports.store.entries(i)), key=lambda e: e.sequence)
    assert [ports.store.hash_at(chain, e.sequence) for e in entries] == [e.hash for e in entries]
    assert ports.store.hash_at(chain, len(entries) + 1) is None  # past the head
    assert ports.store.hash_at((chain + 1) % CHAINS, 1) is None  # a chain with no entry
    assert ports.other_store.hash_at(chain, 1) is None  # another merchant's chain of the same number


# -- authorisations: a capture or cancel claimed once, settled once ------------------------------------------


def authorization(ports: Ports, amount: int = 1000) -> Payment:
    new = payment(ports, amount, metadata={"order": "A-1"}, capture=False)
    commit(ports, lambda uow: ports.store.add_payment(uow, new))
    authorized, entries = new.authorize("ch_1", ports.clock())
    commit(ports, lambda uow: ports.store.settle_payment(uow, new, authorized, entries))
    return ports.store.get_payment(new.id)


REQUESTED = CancellationReason.REQUESTED_BY_CUSTOMER


def capture_of(ports: Ports, amount: int, key: str | None = "k1") -> Action:
    return Action(ActionKind.CAPTURE, ports.clock(), amount=amount, idempotency_id=key)


def cancel_of(ports: Ports, reason: CancellationReason = REQUESTED) -> Action:
    return Action(ActionKind.CANCEL, ports.clock(), reason=reason)


def test_an_authorisation_reads_back_requiring_capture_with_its_hold(ports):
    new = authorization(ports, 1500)
    assert (new.status, new.capture, new.amount_capturable, new.amount_captured) == (
        Status.REQUIRES_CAPTURE, False, 1500, 0
    )  # fmt: skip
    assert (new.action, new.charge_id, new.metadata) == (None, "ch_1", {"order": "A-1"})
    assert balance(ports.store.entries(new.id)) == {HOLD: 1500, HOLD_OFFSET: -1500}


def test_a_claimed_action_reads_back_as_it_was_claimed(ports):
    for action in (capture_of(ports, 400), cancel_of(ports, CancellationReason.EXPIRED)):
        new = authorization(ports)
        commit(ports, lambda uow, new=new, action=action: ports.store.claim_action(uow, new, action))
        stored = ports.store.get_payment(new.id, with_metadata=False)
        assert (stored.action, stored.status) == (action, Status.REQUIRES_CAPTURE)


def test_an_action_is_claimed_once_and_the_loser_sees_the_winner(ports):
    new = authorization(ports)
    capture = capture_of(ports, 400)
    commit(ports, lambda uow: ports.store.claim_action(uow, new, capture))
    with pytest.raises(LostRace) as lost:  # a cancel checked against the same stale read
        commit(ports, lambda uow: ports.store.claim_action(uow, new, cancel_of(ports)))
    found = lost.value.conflicts["payment"]
    assert (found.status, found.action) == (Status.REQUIRES_CAPTURE, capture)
    assert ports.store.get_payment(new.id).action == capture


def test_a_lost_claim_writes_none_of_its_other_parts(ports):
    new = authorization(ports)
    commit(ports, lambda uow: ports.store.claim_action(uow, new, capture_of(ports, 400)))
    uow = ports.store.unit_of_work()
    ports.store.claim_action(uow, new, capture_of(ports, 500, "k2"))
    with pytest.raises(LostRace):
        ports.idempotency.begin(uow, "k2", "d", new.id)
    assert begin(ports, "k2", "d") == Fresh()  # the key was not claimed with it


@pytest.mark.parametrize("made", ["pending", "captured", "declined"])
def test_only_an_authorisation_requiring_capture_takes_a_claim(ports, made):
    if made == "pending":
        other = payment(ports, capture=False)
        commit(ports, lambda uow: ports.store.add_payment(uow, other))
    elif made == "captured":
        other = captured(ports)
    else:
        other = payment(ports, capture=False)
        commit(ports, lambda uow: ports.store.add_payment(uow, other))
        commit(ports, lambda uow: ports.store.settle_payment(uow, other, other.decline("generic_decline"), []))
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.claim_action(uow, other, capture_of(ports, 1)))
    assert lost.value.conflicts["payment"].status is ports.store.get_payment(other.id).status
    assert ports.store.get_payment(other.id).action is None


def test_claiming_or_settling_on_a_payment_never_stored_loses_finding_nothing(ports):
    ghost = payment(ports, capture=False, status=Status.REQUIRES_CAPTURE)
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.claim_action(uow, ghost, capture_of(ports, 1)))
    assert lost.value.conflicts == {"payment": None}
    claimed = replace(ghost, action=cancel_of(ports))
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.settle_action(uow, claimed, *claimed.cancel(REQUESTED, ports.clock())))
    assert lost.value.conflicts["payment"] is None


def test_an_action_is_settled_only_once_it_was_claimed_and_only_once(ports):
    new = authorization(ports, 1000)
    unclaimed = new.cancel(REQUESTED, ports.clock())
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.settle_action(uow, new, *unclaimed))
    assert lost.value.conflicts["payment"].action is None
    capture = capture_of(ports, 400)
    commit(ports, lambda uow: ports.store.claim_action(uow, new, capture))
    claimed = ports.store.get_payment(new.id)
    after, entries = claimed.capture_amount(400, ports.clock())
    commit(ports, lambda uow: ports.store.settle_action(uow, claimed, after, entries))
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.settle_action(uow, claimed, *claimed.cancel(REQUESTED, ports.clock())))
    assert lost.value.conflicts["payment"].status is Status.SUCCEEDED
    stored = ports.store.get_payment(new.id)
    assert (stored.status, stored.amount_captured, stored.action, stored.refundable_amount) == (
        Status.SUCCEEDED, 400, None, 400
    )  # fmt: skip
    assert balance(ports.store.entries(new.id)) == {HOLD: 0, HOLD_OFFSET: 0, RECEIVABLE: 400, MERCHANT: -400}


def test_the_store_holds_refunds_of_a_partial_capture_to_what_was_captured(ports):
    new = authorization(ports, 1000)
    commit(ports, lambda uow: ports.store.claim_action(uow, new, capture_of(ports, 400)))
    claimed = ports.store.get_payment(new.id)
    commit(ports, lambda uow: ports.store.settle_action(uow, claimed, *claimed.capture_amount(400, ports.clock())))
    stored = ports.store.get_payment(new.id)
    _, over = replace(stored, amount_captured=1000).reserve_refund("re_1", 401, ports.clock())  # a wrong check
    with pytest.raises(LostRace):
        commit(ports, lambda uow: ports.store.reserve_refund(uow, stored, over))
    _, rest = stored.reserve_refund("re_2", 400, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, stored, rest))
    assert ports.store.get_payment(new.id).refundable_amount == 0


def test_a_cancel_reads_back_with_its_reason_and_releases_the_hold(ports):
    new = authorization(ports, 1000)
    commit(ports, lambda uow: ports.store.claim_action(uow, new, cancel_of(ports, CancellationReason.EXPIRED)))
    claimed = ports.store.get_payment(new.id)
    after, entries = claimed.cancel(CancellationReason.EXPIRED, ports.clock())
    commit(ports, lambda uow: ports.store.settle_action(uow, claimed, after, entries))
    stored = ports.store.get_payment(new.id)
    assert (stored.status, stored.cancellation_reason, stored.action, stored.amount_capturable) == (
        Status.CANCELED, CancellationReason.EXPIRED, None, 0
    )  # fmt: skip
    assert balance(ports.store.entries(new.id)) == {HOLD: 0, HOLD_OFFSET: 0}


def test_authorisations_are_listed_until_claimed_and_claimed_ones_are_pending_since_their_claim(ports):
    unclaimed = [authorization(ports) for _ in range(4)]
    claimed = authorization(ports)
    plain = payment(ports)
    commit(ports, lambda uow: ports.store.add_payment(uow, plain))
    ports.clock.advance(timedelta(minutes=5))
    action = capture_of(ports, 100)
    commit(ports, lambda uow: ports.store.claim_action(uow, claimed, action))
    ports.clock.advance(timedelta(minutes=1))
    now = ports.clock()
    assert set(ports.store.authorizations(now)) == {PendingItem(a.id, a.created_at) for a in unclaimed}
    assert set(ports.store.authorizations(unclaimed[0].created_at)) == set()  # only those made before the time
    assert set(ports.store.pending(now)) == {
        PendingItem(plain.id, plain.created_at),
        PendingItem(claimed.id, now - timedelta(minutes=1)),
    }
    settled = ports.store.get_payment(claimed.id)
    commit(ports, lambda uow: ports.store.settle_action(uow, settled, *settled.capture_amount(100, now)))
    assert set(ports.store.pending(now)) == {PendingItem(plain.id, plain.created_at)}
    assert claimed.id not in {item.payment_id for item in ports.store.authorizations(now)}


def test_a_merchant_lists_none_of_another_merchants_authorisations(ports):
    authorization(ports)
    ports.clock.advance(timedelta(minutes=1))
    assert list(ports.other_store.authorizations(ports.clock())) == []
    assert ports.other_store.get_payment(authorization(ports).id) is None


# -- events ----------------------------------------------------------------------------------------


def _event(ports: Ports, event: Event) -> Event:
    commit(ports, lambda uow: ports.store.add_event(uow, event))
    return event


def _timeline(ports: Ports, count: int) -> list[Event]:
    """``count`` events of captured payments, alternately succeeded and failed by type, a minute apart; newest
    first."""
    made = []
    for n in range(count):
        paid = captured(ports)
        made.append(
            _event(
                ports,
                replace(
                    payment_event(paid, ports.clock()),
                    type=EventType.PAYMENT_SUCCEEDED if n % 2 else EventType.PAYMENT_FAILED,
                ),
            )
        )
        ports.clock.advance(timedelta(minutes=1))
    return made[::-1]


def test_an_event_reads_back_with_its_payments_metadata_and_its_refund(ports):
    paid = captured(ports)
    assert paid.metadata == {"order": "A-1"}
    succeeded = _event(ports, payment_event(paid, ports.clock()))
    assert ports.store.get_event(succeeded.id) == succeeded
    _, refund = paid.reserve_refund("re_1", 300, ports.clock())
    commit(ports, lambda uow: ports.store.reserve_refund(uow, paid, refund))
    refunded, done, entries = ports.store.get_payment(paid.id).complete_refund(refund, "rf_1", ports.clock())
    refunded_event = refund_event(refunded, done, ports.clock())
    commit(ports, lambda uow: ports.store.complete_refund(uow, done, entries),
           lambda uow: ports.store.add_event(uow, refunded_event))  # fmt: skip
    assert ports.store.get_event(refunded_event.id) == refunded_event
    assert (refunded_event.payment.amount_refunded, refunded_event.refund.status) == (300, RefundStatus.SUCCEEDED)
    assert ports.store.get_event("evt_" + "0" * 24) is None


def test_an_events_payment_is_kept_as_it_stood_whatever_happens_to_it_after(ports):
    new = payment(ports, metadata={"order": "A-1"}, capture=False)
    commit(ports, lambda uow: ports.store.add_payment(uow, new))
    authorised, entries = new.authorize("ch_1", ports.clock())
    authorised_event = payment_event(authorised, ports.clock())
    commit(ports, lambda uow: ports.store.settle_payment(uow, new, authorised, entries),
           lambda uow: ports.store.add_event(uow, authorised_event))  # fmt: skip
    claimed = ports.store.get_payment(new.id).claim(capture_of(ports, 400))
    commit(ports, lambda uow: ports.store.claim_action(uow, claimed, claimed.action))
    captured_payment, entries = claimed.capture_amount(400, ports.clock())
    commit(ports, lambda uow: ports.store.settle_action(uow, claimed, captured_payment, entries))
    kept = ports.store.get_event(authorised_event.id).payment
    assert (kept.status, kept.amount_capturable, kept.amount_captured, kept.charge_id) == (
        Status.REQUIRES_CAPTURE, 1000, 0, "ch_1"
    )  # fmt: skip
    assert kept == replace(authorised, metadata=kept.metadata)


def test_an_event_id_is_taken_once_and_the_change_it_came_with_is_not_written(ports):
    paid = captured(ports)
    first = _event(ports, payment_event(paid, ports.clock()))
    _, refund = paid.reserve_refund("re_1", 300, ports.clock())
    with pytest.raises(LostRace) as lost:
        commit(ports, lambda uow: ports.store.reserve_refund(uow, paid, refund),
               lambda uow: ports.store.add_event(uow, replace(first, type=EventType.PAYMENT_FAILED)))  # fmt: skip
    assert set(lost.value.conflicts) == {"event"}
    assert ports.store.get_event(first.id).type is EventType.PAYMENT_SUCCEEDED
    assert ports.store.get_refund(paid.id, "re_1") is None


def test_events_are_listed_newest_first_page_by_page_and_by_type(ports):
    made = _timeline(ports, 7)
    assert ports.store.list_events(3, None, None) == (made[:3], True)
    assert ports.store.list_events(3, made[2], None) == (made[3:6], True)
    assert ports.store.list_events(3, made[5], None) == (made[6:], False)
    assert ports.store.list_events(10, None, None) == (made, False)
    failed = [e for e in made if e.type is EventType.PAYMENT_FAILED]  # 4 of them, the newest among them
    assert ports.store.list_events(2, None, EventType.PAYMENT_FAILED) == (failed[:2], True)
    assert ports.store.list_events(2, failed[1], EventType.PAYMENT_FAILED) == (failed[2:], False)
    assert ports.store.list_events(3, made[0], EventType.PAYMENT_FAILED) == (failed[1:4], False)
    assert ports.store.list_events(5, None, EventType.REFUND_FAILED) == ([], False)


def test_a_merchants_events_are_none_of_another_merchants(ports):
    (made,) = _timeline(ports, 1)
    assert ports.other_store.get_event(made.id) is None
    assert ports.other_store.list_events(10, None, None) == ([], False)
    assert ports.store.list_events(10, None, None) == ([made], False)


def test_a_settlement_event_reads_back_with_its_share_and_mismatches_and_no_payment(ports):
    """Breaks if an event without a payment could not be stored, read or listed, or lost a side of a mismatch."""
    (paid,) = _timeline(ports, 1)
    mismatches = (
        Mismatch("pay_1", "sl_1", MismatchReason.AMOUNT_DIFFERS, 1000, 1005, "USD", "USD"),
        Mismatch("re_1", None, MismatchReason.NOT_SETTLED, -300, None, "USD", None),
    )
    share = Share("st_1", "USD", ports.clock(), 2705, 59, 2, 2, mismatches, complete=True)
    ports.clock.advance(timedelta(minutes=1))
    made = _event(ports, settlement_event(share, ports.clock()))
    assert ports.store.get_event(made.id) == made
    assert made.type is EventType.SETTLEMENT_MISMATCH and made.payment is None
    assert ports.store.list_events(10, None, None) == ([made, paid], False)
    assert ports.store.list_events(10, None, EventType.SETTLEMENT_MISMATCH) == ([made], False)
    assert ports.other_store.get_event(made.id) is None


def test_an_event_item_expires_is_due_at_once_and_holds_no_card_data(moto_resources):
    dynamodb, kms = boto3.client("dynamodb"), boto3.client("kms")
    cipher = EnvelopeCipher(kms, moto_resources["VAULT_KEY_ID"], "payment-metadata")
    store = DynamoLedgerStore(dynamodb, moto_resources["LEDGER_TABLE"], cipher, "merchant-a")
    ports = Ports(store, None, None, FakeClock(), None, None)
    event = _event(ports, payment_event(captured(ports), ports.clock()))
    pk, sk = event_key("merchant-a", event.id)
    item = dynamodb.get_item(TableName=store.table, Key=to_item({"pk": pk, "sk": sk}), ConsistentRead=True)["Item"]
    values = from_item(item)
    assert values[LEDGER.ttl_attribute] == int((ports.clock() + EVENT_RETENTION).timestamp())
    assert (values[BY_DUE.partition_key], values[BY_DUE.sort_key]) == (due_partition("merchant-a"),
                                                                         iso(event.created_at))  # fmt: skip
    assert "metadata" not in values["payment"] and "A-1" not in str(values)  # sealed in the payment's item only
    assert card_data_in_item(item) == []
