"""A checkpoint signed by KMS (moto's ECC_NIST_P256 key, ECDSA_SHA_256) checks with the public key and cryptography
alone, with no AWS client; any change to its content, or another signature, does not."""

import base64
import json
from dataclasses import replace
from datetime import timedelta

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from moto import mock_aws

from lambdas import deadline
from lambdas.adapters.signer import KmsSigner
from lambdas.domain.chains import CHAINS, Break, Head, merkle_root, positions, root_of
from lambdas.domain.checkpoints import (
    MAX_SIGNED_BYTES,
    Checkpoint,
    checkpoint_break,
    checkpoint_fault,
    pem_of,
    signature_holds,
    signed_bytes,
    unsigned_checkpoint,
)
from lambdas.domain.errors import NotFound
from lambdas.domain.timestamps import iso
from lambdas.presenters import error_body
from lambdas.use_cases.checkpoints import MERCHANT_SECONDS, write_checkpoint, write_checkpoints
from tests.fakes import MERCHANT, FakeLedgerStore, fake_world
from tests.fakes_gateway import FakeGateway
from tests.test_chains import NOW, _chain
from tests.test_use_cases import pay


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


# -- the scheduled checkpoint and the routes, on the fakes --------------------------------------------------------


def _public_key(world) -> tuple[str, str]:
    served = world.service.public_key().body
    return served["key_id"], served["pem"]


def test_the_first_run_signs_even_an_empty_ledger_and_the_route_serves_it_as_signed():
    world = fake_world(FakeGateway())
    with pytest.raises(NotFound):
        world.service.latest_checkpoint()  # a 404 until the first run
    assert world.tenancy.write_checkpoints()["written"] == 2  # both merchants
    served = world.service.latest_checkpoint()
    assert served.status == 200 and served.body["sequence"] == 1
    assert served.body["root"] == merkle_root([])
    assert served.body["created_at"] == iso(world.clock())
    key_id, pem = _public_key(world)
    assert served.body["key_id"] == key_id and signature_holds(json.loads(json.dumps(served.body)), pem)


def test_before_the_first_run_the_latest_checkpoint_is_a_404_whose_body_says_why():
    world = fake_world(FakeGateway())
    with pytest.raises(NotFound) as missing:
        world.service.latest_checkpoint()
    shown = error_body("invalid_request_error", missing.value.code, missing.value.message, "req")["error"]
    assert shown["code"] == "resource_missing" and shown["message"]


def test_a_ledger_that_moved_gets_the_next_checkpoint_and_one_that_did_not_gets_none():
    world = fake_world(FakeGateway())
    assert write_checkpoint(world.deps) == "written"
    assert write_checkpoint(world.deps) == "unchanged"
    paid = pay(world, amount=1999)
    world.service.refund(paid.body["id"], 500, "r")
    world.clock.advance(timedelta(minutes=5))
    assert write_checkpoint(world.deps) == "written"
    latest = world.deps.store.latest_checkpoint()
    heads = world.deps.store.heads()
    assert latest.sequence == 2 and latest.root == merkle_root(heads) == root_of(latest.chains)
    (head,) = heads
    assert latest.chains[head.chain] == {"chain": head.chain, "sequence": 4, "hash": head.hash}
    world.tenancy.write_checkpoints()
    assert world.other().latest_checkpoint().body["sequence"] == 1  # the other merchant's ledger did not move
    first, second = world.deps.store.checkpoints()
    assert checkpoint_fault(first, None, _public_key(world)) is None
    assert checkpoint_fault(second, first, _public_key(world)) is None


def test_two_runs_that_number_the_same_checkpoint_write_it_once():
    world = fake_world(FakeGateway())
    store = world.deps.store
    first_heads = store.heads

    # The second run reads the newest checkpoint and the heads while the first is between its reads and its write.
    def heads_then_race():
        heads = first_heads()
        store.heads = first_heads
        assert write_checkpoint(world.deps) == "written"
        return heads

    store.heads = heads_then_race
    assert write_checkpoint(world.deps) == "raced"
    assert [c.sequence for c in store.checkpoints()] == [1]


def test_a_run_stops_starting_merchants_near_its_deadline_and_one_merchants_error_does_not_stop_it(
    monkeypatch, captured_logs
):
    world = fake_world(FakeGateway())
    monkeypatch.setattr(deadline, "remaining", lambda: 11.5)  # less than a merchant may take at worst
    counts = world.tenancy.write_checkpoints()
    assert counts == {"written": 0, "unchanged": 0, "raced": 0, "refused": 0, "errors": 0, "deferred": 2}
    monkeypatch.setattr(deadline, "remaining", lambda: 60.0)

    heads = FakeLedgerStore.heads

    def broken(store):
        if store.merchant == MERCHANT:
            raise ConnectionError("the table did not answer")
        return heads(store)

    monkeypatch.setattr(FakeLedgerStore, "heads", broken)
    counts = world.tenancy.write_checkpoints()
    assert (counts["errors"], counts["written"]) == (1, 1)

    def unreachable(store):
        raise ConnectionError("the table did not answer")

    monkeypatch.setattr(FakeLedgerStore, "heads", unreachable)
    assert world.tenancy.write_checkpoints()["errors"] == 2  # each merchant's error is counted
    assert [record["message"] for record in captured_logs.errors()] == ["checkpoint failed"] * 3


def test_a_run_with_exactly_the_time_a_merchant_may_take_still_starts_it(monkeypatch):
    world = fake_world(FakeGateway())
    monkeypatch.setattr(deadline, "remaining", lambda: MERCHANT_SECONDS)
    counts = world.tenancy.write_checkpoints()
    assert (counts["written"], counts["deferred"]) == (2, 0)


def test_a_run_never_signs_over_a_newest_checkpoint_whose_chain_positions_were_cut_short():
    """A chain wound back, and the newest checkpoint's stored positions cut before that chain to hide it."""
    world = fake_world(FakeGateway())
    pay(world)
    assert write_checkpoint(world.deps) == "written"
    (head,) = world.deps.store.heads()
    del world.ledger.heads[head.chain]
    latest = world.deps.store.latest_checkpoint()
    world.ledger.checkpoints[latest.sequence] = replace(latest, chains=latest.chains[: head.chain])
    assert write_checkpoints([world.deps])["written"] == 0
    assert [c.sequence for c in world.deps.store.checkpoints()] == [latest.sequence]


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        (lambda c, p: replace(c, body=c.body | {"signature": p.body["signature"]}), "its signature"),
        (lambda c, p: replace(c, body=c.body | {"key_id": "arn:aws:kms:us-east-1:1:key/other"}), "its signature"),
        (lambda c, p: replace(c, chains=[*c.chains[:3], {**c.chains[3], "sequence": 9}, *c.chains[4:]]), "its root"),
        (lambda c, p: replace(c, chains=c.chains[1:]), "name every chain"),
    ],
)
def test_a_checkpoint_that_does_not_hold_by_itself_is_named(change, fault):
    world = fake_world(FakeGateway())
    write_checkpoint(world.deps)
    pay(world)
    write_checkpoint(world.deps)
    first, second = world.deps.store.checkpoints()
    assert checkpoint_fault(second, first, _public_key(world)) is None
    assert fault in checkpoint_fault(change(second, first), first, _public_key(world))


def test_a_checkpoint_is_held_against_the_hash_each_chain_now_has_where_it_signed():
    world = fake_world(FakeGateway())
    pay(world)
    write_checkpoint(world.deps)
    (signed,) = world.deps.store.checkpoints()
    (moved,) = [leaf for leaf in signed.chains if leaf["sequence"] > 0]
    where = (moved["chain"], moved["sequence"])
    key = _public_key(world)
    assert checkpoint_break(signed, None, key, {where: moved["hash"]}) is None
    assert checkpoint_break(signed, None, key, {}) == Break(  # its tail deleted, its head wound back
        *where, None, "it signed an entry the chain no longer has", signed.sequence
    )
    assert checkpoint_break(signed, None, key, {where: "ab" * 32}) == Break(
        *where, None, "the chain up to here is not the one it signed", signed.sequence
    )


def test_a_signature_holds_only_in_canonical_base64_and_only_under_a_p256_key():
    world = fake_world(FakeGateway())
    write_checkpoint(world.deps)
    (signed,) = world.deps.store.checkpoints()
    _, pem = _public_key(world)
    assert signature_holds(signed.body, pem)
    padded = signed.body["signature"][:8] + "\n!" + signed.body["signature"][8:]  # decodes alike without validation
    assert not signature_holds(signed.body | {"signature": padded}, pem)
    rsa_pem = (
        rsa.generate_private_key(65537, 2048).public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    assert not signature_holds(signed.body, rsa_pem.decode())


def test_a_missing_checkpoint_or_a_chain_gone_back_is_named():
    world = fake_world(FakeGateway())
    signer = world.deps.signer
    heads = [Head(c, 3, "ab" * 32) for c in range(CHAINS)]
    made = []
    for sequence, at in ((1, heads), (2, [replace(h, sequence=2) for h in heads]), (3, heads)):
        body = unsigned_checkpoint(sequence, at, NOW, signer.key_id)
        body["signature"] = base64.b64encode(signer.sign(signed_bytes(body))).decode()
        made.append(Checkpoint(body, positions(at)))
    key = _public_key(world)
    assert checkpoint_fault(made[1], made[0], key) == "chain 0 went back from 3 to 2"
    assert checkpoint_fault(made[2], made[0], key) == "checkpoint 2 is missing before it"
    assert checkpoint_fault(made[1], None, key) == "checkpoint 1 is missing before it"


def test_what_is_signed_fits_kms_raw_message_limit_and_more_is_refused_before_kms():
    body = unsigned_checkpoint(10**12, [Head(c, 10**12, "f" * 64) for c in range(CHAINS)], NOW, "k" * 2048)
    assert len(signed_bytes(body)) <= MAX_SIGNED_BYTES
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        signer = KmsSigner(kms, key_id)
        assert signature_holds(body | {"signature": base64.b64encode(signer.sign(signed_bytes(body))).decode()},
                               signer.public_key_pem())  # fmt: skip
        with pytest.raises(ValueError, match="4096"):
            signer.sign(b"x" * (MAX_SIGNED_BYTES + 1))
