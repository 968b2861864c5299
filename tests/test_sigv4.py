"""The local API's SigV4 check against requests the SDK signs: a good signature passes, and any change to what
was signed, a stranger's key, the wrong scope or an old signature is refused."""

from datetime import UTC, datetime, timedelta

import pytest
import requests
from botocore.credentials import Credentials

from client.signing import SigV4
from tools.sigv4 import IssuedCredential, SignatureRejected, verify

REGION = "us-east-1"
KEY = IssuedCredential("AKIAEXAMPLEKEY00001", "secret-of-acme", "arn:aws:iam::123456789012:user/acme", "123456789012")
ISSUED = {KEY.access_key_id: KEY}


def signed(body: bytes = b'{"amount": 100}', key: IssuedCredential = KEY, region: str = REGION, **overrides):
    request = requests.Request(
        "POST", "http://127.0.0.1:3000/payments/pay_1/refunds", data=body, headers={"Idempotency-Key": "k-1"}
    ).prepare()
    SigV4(Credentials(key.access_key_id, key.secret_access_key), region)(request)
    parts = {
        "method": request.method,
        "url": request.url,
        "headers": {name.lower(): value for name, value in request.headers.items()} | {"host": "127.0.0.1:3000"},
        "body": body,
        "issued": ISSUED,
        "region": REGION,
        "now": datetime.now(UTC),
    }
    return parts | overrides


def rejected(**parts) -> str:
    with pytest.raises(SignatureRejected) as refused:
        verify(**parts)
    return refused.value.code


def test_a_request_the_sdk_signed_passes_and_names_its_signer():
    assert verify(**signed()) == KEY


def test_an_unsigned_request_is_refused():
    parts = signed()
    parts["headers"] = {k: v for k, v in parts["headers"].items() if k != "authorization"}
    assert rejected(**parts) == "missing_authentication_token"


@pytest.mark.parametrize(
    "change",
    [
        {"body": b'{"amount": 999}'},
        {"method": "PUT"},
        {"url": "http://127.0.0.1:3000/payments/pay_2/refunds"},
        {"url": "http://127.0.0.1:3000/payments/pay_1/refunds?amount=1"},
    ],
    ids=["body", "method", "path", "query"],
)
def test_a_change_to_what_was_signed_is_refused(change):
    assert rejected(**(signed() | change)) == "invalid_signature"


def test_a_changed_signed_header_is_refused():
    parts = signed()
    parts["headers"]["idempotency-key"] = "k-2"
    assert rejected(**parts) == "invalid_signature"


def test_a_body_hash_that_does_not_match_the_body_is_refused():
    parts = signed()
    parts["headers"]["x-amz-content-sha256"] = "0" * 64
    assert rejected(**parts) == "invalid_signature"


def test_a_key_the_local_stack_never_issued_is_refused():
    stranger = IssuedCredential("AKIAEXAMPLEKEY00002", "secret-of-nobody")
    assert rejected(**signed(key=stranger)) == "invalid_signature"


def test_a_known_key_with_a_guessed_secret_is_refused():
    forged = IssuedCredential(KEY.access_key_id, "guessed")
    assert rejected(**signed(key=forged)) == "invalid_signature"


def test_a_signature_for_another_region_is_refused():
    assert rejected(**signed(region="eu-west-1")) == "invalid_signature"


@pytest.mark.parametrize("skew", [timedelta(minutes=6), timedelta(minutes=-6)])
def test_a_signature_older_or_newer_than_five_minutes_is_refused(skew):
    parts = signed()
    assert rejected(**(parts | {"now": parts["now"] + skew})) == "expired_signature"
