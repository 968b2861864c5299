"""Adapters on their own: the envelope cipher against KMS in moto (the Sparkle client: test_sparkle.py and
test_gateway_contract.py)."""

import boto3
import pytest
from cryptography.exceptions import InvalidTag
from moto import mock_aws

from lambdas.adapters.envelope import MAX_KEY_AGE_SECONDS, MAX_KEY_USES, EnvelopeCipher

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
