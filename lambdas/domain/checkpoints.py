"""Signed checkpoints of a merchant's ledger (shared/docs/api-contract.md, GET /ledger/checkpoints/latest).

A checkpoint commits to every entry written up to it: ``root`` is the Merkle root over the chains' heads
(lambdas.domain.chains.merkle_root). ``signature`` is the base64 of a KMS ``ECC_NIST_P256`` / ``ECDSA_SHA_256``
signature (DER) over the UTF-8 bytes of the checkpoint's own JSON without ``signature``, keys sorted, no spaces;
anyone holding the public key checks it with no AWS credentials (``signature_holds``)."""

import base64
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from lambdas.domain.chains import Head, canonical, merkle_root
from lambdas.domain.timestamps import iso

ALGORITHM = "ECDSA_SHA_256"


def unsigned_checkpoint(sequence: int, heads: Iterable[Head], created_at: datetime, key_id: str) -> dict[str, Any]:
    return {
        "sequence": sequence,
        "root": merkle_root(heads),
        "created_at": iso(created_at),
        "key_id": key_id,
        "algorithm": ALGORITHM,
    }


def signed_bytes(checkpoint: Mapping[str, Any]) -> bytes:
    """What the signature covers: the checkpoint without its signature, as canonical JSON."""
    return canonical({field: value for field, value in checkpoint.items() if field != "signature"})


def signature_holds(checkpoint: Mapping[str, Any], public_key_pem: str) -> bool:
    """Whether ``checkpoint``'s signature is the key's over its own content: cryptography only, no AWS."""
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415 (only the verifiers load it)
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    key = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey) or checkpoint.get("algorithm") != ALGORITHM:
        return False
    try:
        key.verify(base64.b64decode(checkpoint["signature"], validate=True), signed_bytes(checkpoint),
                   ec.ECDSA(hashes.SHA256()))  # fmt: skip
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


def pem_of(der: bytes) -> str:
    """KMS's GetPublicKey answer (DER SubjectPublicKeyInfo) as the PEM that GET /ledger/public-key serves."""
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"
