"""Adapters on their own: the envelope cipher against KMS in moto, and what the DynamoDB idempotency store reports
where the storage contract (test_store_contract.py) does not look (the Sparkle client: test_sparkle.py and
test_gateway_contract.py)."""

from datetime import timedelta

import boto3
import pytest
from cryptography.exceptions import InvalidTag
from moto import mock_aws

from lambdas.adapters.dynamo import DynamoUnitOfWork
from lambdas.adapters.envelope import MAX_KEY_AGE_SECONDS, MAX_KEY_USES, EnvelopeCipher
from lambdas.adapters.idempotency import DynamoIdempotencyStore
from lambdas.domain.idempotency import RETENTION_SECONDS, State
from lambdas.ports import Answer, LostRace
from lambdas.use_cases.idempotency import Fresh, IdempotencyKeys, Replay, Resume
from tests.support.fakes import FakeClock

# --- envelope encryption -------------------------------------------------------------------


@pytest.fixture
def kms(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


class CountingKms:
    def __init__(self, kms):
        self.kms, self.calls = kms, []

    def __getattr__(self, name):
        def call(**kwargs):
            self.calls.append(name)
            return getattr(self.kms, name)(**kwargs)

        return call


def test_a_ciphertext_opens_only_for_its_own_record(kms):
    cipher = EnvelopeCipher(kms, kms.create_key()["KeyMetadata"]["KeyId"], "card-vault")
    sealed = cipher.seal(b"secret", "tok_1")
    assert sealed.ciphertext.find(b"secret") == -1
    assert cipher.open(sealed, "tok_1") == b"secret"
    with pytest.raises(InvalidTag):
        cipher.open(sealed, "tok_2")
    other_purpose = EnvelopeCipher(kms, cipher.key_id, "payment-metadata")
    with pytest.raises(kms.exceptions.InvalidCiphertextException):  # the data key's context names another purpose
        other_purpose.open(sealed, "tok_1")


def test_data_keys_are_reused_within_their_age_and_use_limits(kms):
    counting = CountingKms(kms)
    now = [1000.0]  # a monotonic clock's reading: not zero
    cipher = EnvelopeCipher(counting, kms.create_key()["KeyMetadata"]["KeyId"], "card-vault", clock=lambda: now[0])
    sealed = [cipher.seal(b"x", f"tok_{n}") for n in range(MAX_KEY_USES)]
    assert counting.calls == ["generate_data_key"]
    cipher.seal(b"x", "tok_over_the_use_limit")
    assert counting.calls == ["generate_data_key"] * 2
    now[0] += MAX_KEY_AGE_SECONDS  # exactly as old as a key may be: a new one
    cipher.seal(b"x", "tok_too_old")
    assert counting.calls == ["generate_data_key"] * 3
    fresh = EnvelopeCipher(counting, cipher.key_id, "card-vault", clock=lambda: now[0])
    for n, item in enumerate(sealed[:10]):
        assert fresh.open(item, f"tok_{n}") == b"x"
    assert counting.calls.count("decrypt") == 1


# --- idempotency records in DynamoDB --------------------------------------------------------


class Idempotency:
    """The DynamoDB idempotency store on moto's tables, with a clock the test moves."""

    def __init__(self, resources: dict[str, str]) -> None:
        self.dynamodb, self.clock = boto3.client("dynamodb"), FakeClock()
        cipher = EnvelopeCipher(boto3.client("kms"), resources["VAULT_KEY_ID"], "payment-metadata")
        records = DynamoIdempotencyStore(self.dynamodb, resources["IDEMPOTENCY_TABLE"], cipher)
        self.store = IdempotencyKeys(records, self.clock.epoch)

    def unit_of_work(self) -> DynamoUnitOfWork:
        return DynamoUnitOfWork(self.dynamodb)

    def lost_race(self, add) -> LostRace:
        uow = self.unit_of_work()
        add(uow)
        with pytest.raises(LostRace) as lost:
            uow.commit()
        return lost.value


@pytest.fixture
def idempotency(moto_resources) -> Idempotency:
    return Idempotency(moto_resources)


def test_a_key_is_live_through_its_last_second_for_a_lookup_as_for_a_claim(idempotency):
    store, clock = idempotency.store, idempotency.clock
    answer = Answer(201, {"id": "tok_1"})
    assert store.begin(idempotency.unit_of_work(), "k", "d", "tok_1", answer=answer) == Fresh()
    clock.advance(timedelta(seconds=RETENTION_SECONDS))  # the record's expiration, to the second
    replayed = Replay(Answer(answer.status, answer.body, replayed=True))
    assert store.resume_or_replay("k", "d") == replayed
    assert store.begin(idempotency.unit_of_work(), "k", "d", "tok_2", answer=Answer(201, {"id": "tok_2"})) == replayed
    clock.advance(timedelta(seconds=1))
    assert store.resume_or_replay("k", "d") is None


def test_completing_a_key_no_request_holds_is_a_lost_race_that_reports_the_record_met(idempotency):
    store = idempotency.store
    store.begin(idempotency.unit_of_work(), "k", "d", "pay_1")
    store.release("k")  # a 5xx answered meanwhile: nothing may be stored for a replay
    lost = idempotency.lost_race(lambda uow: store.complete(uow, "k", Answer(201, {"id": "pay_1"})))
    met = lost.conflicts["idempotency"]
    assert (met.state, met.resource_id, met.response_status) == (State.RETRYABLE, "pay_1", None)
    assert store.resume_or_replay("k", "d") == Resume("pay_1")  # the answer was not stored: a retry resumes


def test_requiring_a_held_key_idle_is_a_lost_race_that_reports_the_claim_met(idempotency):
    store = idempotency.store
    store.begin(idempotency.unit_of_work(), "k", "d", "pay_1")
    lost = idempotency.lost_race(lambda uow: store.require_idle(uow, "k"))
    met = lost.conflicts["idempotency"]
    assert (met.state, met.resource_id) == (State.IN_PROGRESS, "pay_1")
