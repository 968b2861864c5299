"""Signed checkpoints of a merchant's ledger (shared/docs/api-contract.md, GET /ledger/checkpoints/latest).

A checkpoint commits to every entry written up to it: ``root`` is the Merkle root over where every chain stood
(lambdas.domain.chains.positions and root_of), and those positions are kept with the checkpoint. ``signature`` is
the base64 of a KMS ``ECC_NIST_P256`` / ``ECDSA_SHA_256`` signature (DER) over the UTF-8 bytes of the checkpoint's
own JSON without ``signature``, keys sorted, no spaces; anyone holding the public key checks it with no AWS
credentials (``signature_holds``). Checkpoints form a chain of their own: each names its ``merchant`` and holds in
``previous`` the hash of the one before it, signature included (``link_to``), and never covers less than it
(``not_extended``). The signed JSON carries the contract's fields only: KMS signs a raw message of at most
``MAX_SIGNED_BYTES``, which the 64 positions alone would pass."""

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lambdas.domain.chains import CHAINS, GENESIS, Break, Head, canonical, positions, root_of
from lambdas.domain.timestamps import iso

ALGORITHM = "ECDSA_SHA_256"
MAX_SIGNED_BYTES = 4096  # KMS Sign's limit for MessageType RAW (moto does not enforce it)


@dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint as served (``body``), and the chain positions its root is computed from."""

    body: dict[str, Any]
    chains: list[dict[str, Any]]

    @property
    def sequence(self) -> int:
        return int(self.body["sequence"])

    @property
    def root(self) -> str:
        return str(self.body["root"])


def unsigned_checkpoint(
    merchant: str, previous: Checkpoint | None, heads: Sequence[Head], created_at: datetime, key_id: str
) -> dict[str, Any]:
    """The checkpoint after ``previous`` (None: the first) over ``heads``, ready to sign."""
    return {
        "merchant": merchant,
        "sequence": previous.sequence + 1 if previous else 1,
        "previous": link_to(previous.body) if previous else None,
        "root": root_of(positions(heads)),
        "created_at": iso(created_at),
        "key_id": key_id,
        "algorithm": ALGORITHM,
    }


def link_to(checkpoint: Mapping[str, Any]) -> str:
    """What the next checkpoint's ``previous`` holds: the SHA-256 (lowercase hex) of this one's canonical JSON,
    signature included."""
    return hashlib.sha256(canonical(checkpoint)).hexdigest()


def not_extended(
    previous: Checkpoint, now: Sequence[Mapping[str, Any]], hash_at: Callable[[int, int], str | None]
) -> list[int]:
    """The chains whose entries up to where ``previous`` signed them are not the ones it signed: a chain now shorter,
    or another hash at that position (a chain truncated below it and grown again). ``now``: every chain's position
    (``positions``); ``hash_at(chain, sequence)``: the hash of the entry there (None: none), read only for a chain
    that moved past the signed position."""
    changed = []
    for then, leaf in zip(previous.chains, now, strict=True):
        chain, signed = then["chain"], then["sequence"]
        if signed == 0:
            continue
        if leaf["sequence"] < signed:
            found = None  # gone back
        else:
            found = leaf["hash"] if leaf["sequence"] == signed else hash_at(chain, signed)
        if found != then["hash"]:
            changed.append(chain)
    return changed


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


def checkpoint_fault(checkpoint: Checkpoint, previous: Checkpoint | None, public_key: tuple[str, str]) -> str | None:
    """Why ``checkpoint`` does not hold by itself, or after ``previous`` (the one before it): a signature that is
    not the key's, a root that is not its chains', a checkpoint missing before it, a ``previous`` that is not the
    hash of the one before it, or a chain gone back."""
    key_id, pem = public_key
    if checkpoint.body.get("key_id") != key_id or not signature_holds(checkpoint.body, pem):
        return "its signature is not the ledger key's over its content"
    if [leaf["chain"] for leaf in checkpoint.chains] != list(range(CHAINS)):
        return "its chain positions do not name every chain once, in order"
    if root_of(checkpoint.chains) != checkpoint.root:
        return "its root is not the Merkle root of its chain positions"
    return _order_fault(checkpoint, previous)


def _order_fault(checkpoint: Checkpoint, previous: Checkpoint | None) -> str | None:
    """Why ``checkpoint`` does not follow ``previous``: not the next number, not linked to it, or a chain gone back."""
    expected = previous.sequence + 1 if previous else 1
    if checkpoint.sequence != expected:
        return f"checkpoint {expected} is missing before it"
    if checkpoint.body.get("previous") != (link_to(previous.body) if previous else None):
        return f"its previous is not the hash of checkpoint {expected - 1}" if previous else "its previous is not null"
    for now, then in zip(checkpoint.chains, previous.chains if previous else [], strict=bool(previous)):
        if now["sequence"] < then["sequence"]:
            return f"chain {now['chain']} went back from {then['sequence']} to {now['sequence']}"
    return None


def checkpoint_break(
    checkpoint: Checkpoint,
    previous: Checkpoint | None,
    public_key: tuple[str, str],
    hash_at: Mapping[tuple[int, int], str],
) -> Break | None:
    """The first way ``checkpoint`` does not hold (``checkpoint_fault``), or a chain position it signed that the
    entries no longer give: ``hash_at`` maps (chain, sequence) to the hash the recomputed chain has there, for
    every position a checkpoint names (a chain rewritten whole, its hashes recomputed, checks by itself: not
    against what was signed before)."""
    fault = checkpoint_fault(checkpoint, previous, public_key)
    if fault:
        return Break(None, None, None, fault, checkpoint=checkpoint.sequence)
    for leaf in checkpoint.chains:
        chain, sequence = leaf["chain"], leaf["sequence"]
        found = GENESIS if sequence == 0 else hash_at.get((chain, sequence))
        if found is None:
            return Break(chain, sequence, None, "it signed an entry the chain no longer has", checkpoint.sequence)
        if found != leaf["hash"]:
            reason = "the chain up to here is not the one it signed"
            return Break(chain, sequence, None, reason, checkpoint.sequence)
    return None
