"""Adapters on their own: the Sparkle client against the sandbox process, the
envelope cipher against KMS in moto."""

from datetime import date

import boto3
import pytest
from cryptography.exceptions import InvalidTag
from moto import mock_aws

from lambdas.adapters.envelope import MAX_KEY_USES, EnvelopeCipher
from lambdas.adapters.sparkle import RetryPolicy, SparkleClient
from lambdas.gateway import GatewayOutcomeUnknown, GatewayRejected, GatewayUnavailable
from lambdas.domain.cards import parse_card
from sparkle_sandbox.server import DEFAULT_SECRET_KEY

CARD = parse_card("4242424242424242", 12, 2030, date(2026, 11, 26), "card", cvc="737")


def client(url: str, key: str = DEFAULT_SECRET_KEY, read_timeout: float = 1.0) -> SparkleClient:
    return SparkleClient(url, lambda: key, read_timeout=read_timeout, retry=RetryPolicy(attempts=3, backoff_seconds=0.05))


# --- Sparkle client and sandbox -------------------------------------------------------


def test_a_wrong_secret_key_is_refused(sandbox):
    with pytest.raises(GatewayRejected) as refused:
        client(sandbox.url, key="sk_wrong").charge("pay_1", 100, "USD", CARD, idempotency_key="k")
    assert refused.value.status == 401
    assert sandbox.charges() == []


def test_charge_lookup_and_refund(sandbox):
    gateway = client(sandbox.url)
    charge = gateway.charge("pay_lookup", 1000, "USD", CARD, idempotency_key="pay_lookup")
    assert (charge.status, charge.amount, charge.reference) == ("succeeded", 1000, "pay_lookup")
    assert gateway.find_charge("pay_lookup") == charge
    assert gateway.find_charge("pay_unknown") is None
    assert gateway.refund(charge.id, 600, idempotency_key="re_1").startswith("rf_")
    with pytest.raises(GatewayRejected) as refused:
        gateway.refund(charge.id, 401, idempotency_key="re_2")
    assert refused.value.status == 400


def test_the_sandbox_enforces_idempotency_keys(sandbox):
    gateway = client(sandbox.url)
    first = gateway.charge("pay_a", 100, "USD", CARD, idempotency_key="same")
    assert gateway.charge("pay_a", 100, "USD", CARD, idempotency_key="same") == first
    with pytest.raises(GatewayRejected) as refused:
        gateway.charge("pay_a", 101, "USD", CARD, idempotency_key="same")
    assert refused.value.status == 422
    assert len(sandbox.charges()) == 1


def test_transient_errors_are_retried_with_the_same_key(sandbox):
    sandbox.faults(error_rate=0.5)
    gateway = SparkleClient(sandbox.url, lambda: DEFAULT_SECRET_KEY, retry=RetryPolicy(attempts=12, backoff_seconds=0.01))
    for n in range(5):
        gateway.charge(f"pay_{n}", 100, "USD", CARD, idempotency_key=f"pay_{n}")
    assert len(sandbox.charges()) == 5


def test_an_outage_is_unavailable_and_a_timeout_is_unknown(sandbox):
    sandbox.faults(error_rate=1.0)
    with pytest.raises(GatewayUnavailable):
        client(sandbox.url).charge("pay_x", 100, "USD", CARD, idempotency_key="x")
    sandbox.faults(error_rate=0.0, latency_ms=1500)
    with pytest.raises(GatewayOutcomeUnknown):
        client(sandbox.url, read_timeout=0.5).find_charge("pay_x")


def test_nothing_listening_is_unavailable_not_unknown():
    from tools.emulator import free_port

    with pytest.raises(GatewayUnavailable):
        client(f"http://127.0.0.1:{free_port()}").charge("pay_x", 100, "USD", CARD, idempotency_key="x")


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
    with pytest.raises(Exception):  # KMS refuses: the encryption context names another purpose
        other_purpose.open(sealed, "tok_1")


def test_data_keys_are_reused_within_their_age_and_use_limits(kms):
    counting = CountingKms(kms)
    now = [0.0]
    cipher = EnvelopeCipher(counting, kms.create_key()["KeyMetadata"]["KeyId"], "card-vault", clock=lambda: now[0])
    sealed = [cipher.seal(b"x", f"tok_{n}") for n in range(MAX_KEY_USES)]
    assert counting.calls == ["generate_data_key"]
    cipher.seal(b"x", "tok_over_the_use_limit")
    assert counting.calls == ["generate_data_key"] * 2
    now[0] = 301.0
    cipher.seal(b"x", "tok_too_old")
    assert counting.calls == ["generate_data_key"] * 3
    fresh = EnvelopeCipher(counting, cipher.key_id, "card-vault", clock=lambda: now[0])
    for n, item in enumerate(sealed[:10]):
        assert fresh.open(item, f"tok_{n}") == b"x"
    assert counting.calls.count("decrypt") == 1
