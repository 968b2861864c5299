"""A checkpoint signed by KMS (moto's ECC_NIST_P256 key, ECDSA_SHA_256) checks with the public key and cryptography
alone, with no AWS client; any change to its content, or another signature, does not."""

import base64
import json

import boto3
import pytest
from moto import mock_aws

from lambdas.domain.chains import Head, merkle_root
from lambdas.domain.checkpoints import pem_of, signature_holds, signed_bytes, unsigned_checkpoint
from tests.test_chains import NOW, _chain


@pytest.fixture
def signed():
    """A checkpoint over two chains, signed by KMS; the public key as GET /ledger/public-key serves it."""
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        _, head = _chain(3)
        checkpoint = unsigned_checkpoint(7, [head, Head(5, 1, "ab" * 32)], NOW, key_id)
        signature = kms.sign(KeyId=key_id, Message=signed_bytes(checkpoint), MessageType="RAW",
                             SigningAlgorithm="ECDSA_SHA_256")["Signature"]  # fmt: skip
        pem = pem_of(kms.get_public_key(KeyId=key_id)["PublicKey"])
    return checkpoint | {"signature": base64.b64encode(signature).decode()}, pem, head


def test_a_checkpoint_checks_offline_with_the_public_key_alone(signed):
    checkpoint, pem, head = signed
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n") and pem.endswith("-----END PUBLIC KEY-----\n")
    assert signature_holds(json.loads(json.dumps(checkpoint)), pem)  # as a client receives it
    assert set(checkpoint) == {"sequence", "root", "created_at", "key_id", "algorithm", "signature"}
    assert checkpoint["root"] == merkle_root([head, Head(5, 1, "ab" * 32)])
    assert (
        signed_bytes(checkpoint)
        == json.dumps(
            {k: v for k, v in checkpoint.items() if k != "signature"}, sort_keys=True, separators=(",", ":")
        ).encode()
    )  # the contract's own recipe


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: c | {"root": "0" * 64},
        lambda c: c | {"sequence": c["sequence"] + 1},
        lambda c: c | {"created_at": "2030-01-01T00:00:00.000Z"},
        lambda c: c | {"signature": base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()},
        lambda c: c | {"signature": "not base64!"},
        lambda c: c | {"algorithm": "RSASSA_PSS_SHA_256"},
        lambda c: {k: v for k, v in c.items() if k != "signature"},
    ],
)
def test_a_forged_or_replaced_checkpoint_does_not_check(signed, forge):
    checkpoint, pem, _ = signed
    assert not signature_holds(forge(checkpoint), pem)


def test_another_keys_signature_does_not_check(signed):
    checkpoint, _, _ = signed
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        other = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        other_pem = pem_of(kms.get_public_key(KeyId=other)["PublicKey"])
    assert not signature_holds(checkpoint, other_pem)
