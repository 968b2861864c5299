"""One contract for the vault port, run against the in-memory fake and the KMS vault (moto in process)."""

import base64
import hashlib
from datetime import date

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidTag

from lambdas.adapters.envelope import EnvelopeCipher
from lambdas.adapters.vault import CardVault
from lambdas.domain.cards import parse_card
from lambdas.encryption_context import Purpose
from tests.support.fakes import FakeVault

TODAY = date(2026, 11, 27)
VISA = parse_card("4242424242424242", 12, 2030, TODAY, "card", holder_name="A. Holder")
MASTERCARD = parse_card("5555555555554444", 1, 2031, TODAY, "card")


@pytest.fixture(params=["fake", pytest.param("kms", marks=pytest.mark.integration)])
def vault(request):
    if request.param == "fake":
        return FakeVault()
    env = request.getfixturevalue("moto_resources")
    kms = boto3.client("kms")
    return CardVault(kms, env["FINGERPRINT_KEY_ID"], EnvelopeCipher(kms, env["VAULT_KEY_ID"], Purpose.CARD))


def test_a_fingerprint_is_stable_per_card_and_not_a_plain_hash(vault):
    fingerprint = vault.fingerprint(VISA.number)
    assert fingerprint == vault.fingerprint(parse_card("4242 4242 4242 4242", 1, 2031, TODAY, "card").number)
    assert fingerprint != vault.fingerprint(MASTERCARD.number)
    plain = hashlib.sha256(VISA.number.digits.encode()).digest()
    assert fingerprint not in (plain.hex(), base64.urlsafe_b64encode(plain).rstrip(b"=").decode())


def test_a_masked_card_shows_only_brand_last4_and_expiry(vault):
    masked = vault.mask(VISA, "fp")
    assert (masked.brand, masked.last4, masked.exp_month, masked.exp_year, masked.fingerprint) == (
        "visa",
        "4242",
        12,
        2030,
        "fp",
    )


def test_a_sealed_card_opens_only_for_its_token(vault):
    sealed = vault.seal("tok_1", VISA)
    opened = vault.open("tok_1", sealed)
    assert (opened.number.digits, opened.exp_month, opened.exp_year, opened.holder_name, opened.cvc) == (
        "4242424242424242",
        12,
        2030,
        "A. Holder",
        None,
    )
    with pytest.raises(InvalidTag):
        vault.open("tok_2", sealed)


def test_a_cipher_opens_only_what_its_own_key_sealed(moto_resources):
    """The cipher names its key to KMS when it unwraps, so a record sealed under another key (a key replaced, a
    record copied from another deployment) is refused, not opened by whichever key wrapped it."""
    kms = boto3.client("kms")
    other_key = kms.create_key(Description="another deployment's vault key")["KeyMetadata"]["Arn"]
    sealed = EnvelopeCipher(kms, other_key, Purpose.CARD).seal(b"secret", "tok_1")
    with pytest.raises(ClientError) as refused:
        EnvelopeCipher(kms, moto_resources["VAULT_KEY_ID"], Purpose.CARD).open(sealed, "tok_1")
    # KMS answers IncorrectKeyException; moto, AccessDeniedException
    assert refused.value.response["Error"]["Code"] in ("IncorrectKeyException", "AccessDeniedException")
    assert EnvelopeCipher(kms, other_key, Purpose.CARD).open(sealed, "tok_1") == b"secret"
