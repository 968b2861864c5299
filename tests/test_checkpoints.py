"""A checkpoint signed by KMS (moto's ECC_NIST_P256 key, ECDSA_SHA_256) checks with the public key and cryptography
alone, with no AWS client; any change to its content, or another signature, does not."""

import base64
import hashlib
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
from lambdas.domain.chains import CHAINS, Break, Head, chain_of, merkle_root, positions, root_of
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
from tests.support.chains import NOW, build_chain, pay_on_chain, truncate_chain
from tests.support.fakes import MERCHANT, FakeCheckpointArchive, FakeLedgerStore, FakeSigner, FakeUnitOfWork, fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.payments import pay


@pytest.fixture
def signed():
    """A checkpoint over two chains, signed by KMS; the public key as GET /ledger/public-key serves it."""
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        _, head = build_chain(3)
        checkpoint = unsigned_checkpoint(MERCHANT, None, [head, Head(5, 1, "ab" * 32)], NOW, key_id)
        signature = kms.sign(KeyId=key_id, Message=signed_bytes(checkpoint), MessageType="RAW",
                             SigningAlgorithm="ECDSA_SHA_256")["Signature"]  # fmt: skip
        pem = pem_of(kms.get_public_key(KeyId=key_id)["PublicKey"])
    return checkpoint | {"signature": base64.b64encode(signature).decode()}, pem, head


def test_a_checkpoint_checks_offline_with_the_public_key_alone(signed):
    checkpoint, pem, head = signed
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n") and pem.endswith("-----END PUBLIC KEY-----\n")
    assert signature_holds(json.loads(json.dumps(checkpoint)), pem)  # as a client receives it
    assert set(checkpoint) == {"merchant", "sequence", "previous", "root", "created_at", "key_id", "algorithm",
                               "signature"}  # fmt: skip
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
        lambda c: c | {"merchant": "merchant-b"},
        lambda c: c | {"previous": "ab" * 32},
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


@pytest.mark.parametrize("payments", [1, 2])  # grown back to as long as it was, or past it
def test_a_chain_truncated_below_its_checkpoint_and_grown_again_by_honest_payments_is_refused(payments):
    world = fake_world(FakeGateway())
    paid = pay(world).body["id"]
    assert write_checkpoint(world.deps) == "written"
    chain = truncate_chain(world, paid)
    for _ in range(payments):
        pay_on_chain(world, chain)
    (head,) = [head for head in world.deps.store.heads() if head.chain == chain]
    assert head.sequence >= world.deps.store.latest_checkpoint().chains[chain]["sequence"]  # sequences alone agree
    assert write_checkpoints([world.deps])["refused"] == 1
    assert [c.sequence for c in world.deps.store.checkpoints()] == [1]
    assert sorted(world.db.archive[MERCHANT]) == [1]  # nothing signed, nothing kept


def test_a_ledger_that_grew_past_its_checkpoint_is_signed():
    world = fake_world(FakeGateway())
    paid = pay(world).body["id"]
    assert write_checkpoint(world.deps) == "written"
    pay_on_chain(world, chain_of(paid))
    assert write_checkpoint(world.deps) == "written"


def test_each_checkpoint_is_kept_in_the_write_once_copy_before_the_table_has_it(monkeypatch):
    world = fake_world(FakeGateway())
    order = []
    keep, commit = FakeCheckpointArchive.keep, FakeUnitOfWork.commit
    monkeypatch.setattr(FakeCheckpointArchive, "keep", lambda archive, c: (order.append("copy"), keep(archive, c))[1])
    monkeypatch.setattr(FakeUnitOfWork, "commit", lambda uow: (order.append("table"), commit(uow))[1])
    assert write_checkpoint(world.deps) == "written"
    assert order == ["copy", "table"]
    assert world.db.archive[MERCHANT] == {1: world.deps.store.latest_checkpoint()}


def test_a_checkpoint_the_copy_did_not_take_never_reaches_the_table(monkeypatch, captured_logs):
    world = fake_world(FakeGateway())

    def unavailable(archive, checkpoint):
        raise ConnectionError("S3 did not answer")

    monkeypatch.setattr(FakeCheckpointArchive, "keep", unavailable)
    assert world.tenancy.write_checkpoints()["errors"] == 2
    assert list(world.deps.store.checkpoints()) == [] and world.db.archive == {}
    assert sorted(record["merchant"] for record in captured_logs.errors()) == [MERCHANT, "merchant-b"]


def test_a_run_that_stopped_between_the_copy_and_the_table_is_completed_by_the_next(monkeypatch):
    world = fake_world(FakeGateway())
    pay(world)

    def unavailable(store, uow, checkpoint):
        raise ConnectionError("the table did not answer")

    with monkeypatch.context() as failing:
        failing.setattr(FakeLedgerStore, "add_checkpoint", unavailable)
        assert write_checkpoints([world.deps])["errors"] == 1
    assert list(world.deps.store.checkpoints()) == [] and sorted(world.db.archive[MERCHANT]) == [1]
    assert write_checkpoint(world.deps) == "raced"  # the copy's checkpoint 1, put in the table
    assert world.deps.store.latest_checkpoint() == world.db.archive[MERCHANT][1]
    pay(world, key="next")
    assert write_checkpoint(world.deps) == "written"
    assert [c.sequence for c in world.deps.store.checkpoints()] == sorted(world.db.archive[MERCHANT]) == [1, 2]


def test_a_copy_that_holds_another_checkpoint_under_the_next_number_is_refused():
    world = fake_world(FakeGateway())
    assert write_checkpoint(world.deps) == "written"
    pay(world)
    heads = world.deps.store.heads()
    world.db.archive[MERCHANT][2] = _signed(world, None, heads, sequence=2)  # not linked to checkpoint 1
    assert write_checkpoint(world.deps) == "refused"
    assert [c.sequence for c in world.deps.store.checkpoints()] == [1]


def test_a_checkpoint_deleted_from_the_table_comes_back_from_the_copy_and_the_ledger_is_held_to_it():
    """The newest checkpoint deleted and a chain rewritten under it: the run finds the copy's, and refuses."""
    world = fake_world(FakeGateway())
    write_checkpoint(world.deps)
    paid = pay(world).body["id"]
    assert write_checkpoint(world.deps) == "written"
    del world.ledger.checkpoints[2]
    pay_on_chain(world, truncate_chain(world, paid))
    assert write_checkpoints([world.deps])["refused"] == 1
    assert [c.sequence for c in world.deps.store.checkpoints()] == [1, 2]
    assert world.deps.store.latest_checkpoint() == world.db.archive[MERCHANT][2]


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


def _signed(world, after: Checkpoint | None, heads: list[Head], **changed) -> Checkpoint:
    """The checkpoint after ``after`` over ``heads``, with ``changed`` fields, signed by the world's key."""
    body = unsigned_checkpoint(MERCHANT, after, heads, NOW, world.deps.signer.key_id) | changed
    body["signature"] = base64.b64encode(world.deps.signer.sign(signed_bytes(body))).decode()
    return Checkpoint(body, positions(heads))


def test_a_missing_checkpoint_or_a_chain_gone_back_is_named():
    world = fake_world(FakeGateway())
    heads = [Head(c, 3, "ab" * 32) for c in range(CHAINS)]
    first = _signed(world, None, heads)
    second = _signed(world, first, [replace(h, sequence=2) for h in heads])
    third = _signed(world, second, heads)
    key = _public_key(world)
    assert checkpoint_fault(second, first, key) == "chain 0 went back from 3 to 2"
    assert checkpoint_fault(third, first, key) == "checkpoint 2 is missing before it"
    assert checkpoint_fault(second, None, key) == "checkpoint 1 is missing before it"


def test_each_checkpoint_names_its_merchant_and_holds_the_hash_of_the_one_before_it():
    world = fake_world(FakeGateway())
    write_checkpoint(world.deps)
    pay(world)
    write_checkpoint(world.deps)
    first, second = (json.loads(json.dumps(c.body)) for c in world.deps.store.checkpoints())  # as a client gets them
    assert first["merchant"] == second["merchant"] == MERCHANT and first["previous"] is None
    contract = json.dumps(first, sort_keys=True, separators=(",", ":")).encode()  # signature included
    assert second["previous"] == hashlib.sha256(contract).hexdigest()
    _, pem = _public_key(world)
    assert signature_holds(second, pem)  # ``merchant`` and ``previous`` are signed
    world.tenancy.write_checkpoints()
    assert world.other().latest_checkpoint().body["merchant"] == "merchant-b"


def test_a_checkpoint_that_does_not_link_the_one_before_it_is_named():
    world = fake_world(FakeGateway())
    heads = [Head(c, 3, "ab" * 32) for c in range(CHAINS)]
    first = _signed(world, None, heads)
    other_first = _signed(world, None, heads, created_at="2026-01-01T00:00:00.000Z")
    key = _public_key(world)
    assert checkpoint_fault(_signed(world, first, heads), first, key) is None
    assert checkpoint_fault(_signed(world, other_first, heads), first, key) == (
        "its previous is not the hash of checkpoint 1"
    )
    assert checkpoint_fault(_signed(world, None, heads, previous="ab" * 32), None, key) == "its previous is not null"


def test_what_is_signed_fits_kms_raw_message_limit_and_more_is_refused_before_kms():
    longest = Checkpoint({"sequence": 10**12 - 1, "signature": "s" * 200}, [])  # as a previous checkpoint
    heads = [Head(c, 10**12, "f" * 64) for c in range(CHAINS)]
    body = unsigned_checkpoint("m" * 63, longest, heads, NOW, "k" * 2048)  # the longest merchant id the config takes
    assert len(signed_bytes(body)) <= MAX_SIGNED_BYTES
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        signer = KmsSigner(kms, key_id)
        assert signature_holds(body | {"signature": base64.b64encode(signer.sign(signed_bytes(body))).decode()},
                               signer.public_key_pem())  # fmt: skip
        with pytest.raises(ValueError, match="4096"):
            signer.sign(b"x" * (MAX_SIGNED_BYTES + 1))


@pytest.fixture
def signatures(monkeypatch) -> list[bytes]:
    """Every message the world's key signs (deployed, each a KMS Sign call)."""
    signed: list[bytes] = []
    sign = FakeSigner.sign
    monkeypatch.setattr(FakeSigner, "sign", lambda signer, message: (signed.append(message), sign(signer, message))[1])
    return signed


def _checkpointed(world, times: int) -> str | None:
    """``times`` checkpoints, each after the first over one more payment; the last payment's id."""
    paid = None
    write_checkpoint(world.deps)
    for n in range(times - 1):
        paid = pay(world, key=f"checkpointed-{n}").body["id"]
        assert write_checkpoint(world.deps) == "written"
    return paid


def _table_and_copy(world) -> tuple[list[int], list[int]]:
    return sorted(world.ledger.checkpoints), sorted(world.db.archive[MERCHANT])


FORGERIES = {
    "replaced in the table only": lambda world, forged, signed: {"table": forged},
    "replaced in the table, signed by the key": lambda world, forged, signed: {"table": signed},
    "the copy's too, its signature not the key's": lambda world, forged, signed: {"table": forged, "copy": forged},
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_run_builds_only_on_a_newest_checkpoint_that_is_the_copys_and_the_keys(forgery, signatures):
    """A chain rewritten under checkpoint 2, and checkpoint 2 made over the rewritten ledger: the run refuses (the
    alarm's count) and asks the key for nothing."""
    world = fake_world(FakeGateway())
    pay_on_chain(world, truncate_chain(world, _checkpointed(world, 2)))
    heads = world.deps.store.heads()
    real = world.deps.store.latest_checkpoint()
    forged = replace(real, body=real.body | {"root": root_of(positions(heads))}, chains=positions(heads))
    placed = FORGERIES[forgery](world, forged, _signed(world, world.deps.store.checkpoint(1), heads))
    world.ledger.checkpoints[2] = placed["table"]
    world.db.archive[MERCHANT][2] = placed.get("copy", real)
    pay(world, key="after the forgery")
    signatures.clear()
    assert write_checkpoints([world.deps])["refused"] == 1
    assert signatures == []
    assert _table_and_copy(world) == ([1, 2], [1, 2])


@pytest.mark.parametrize("deleted", [(1, 2, 3), (2, 3)])
def test_a_run_refuses_before_signing_when_the_table_lacks_checkpoints_the_copy_holds(deleted, signatures):
    world = fake_world(FakeGateway())
    _checkpointed(world, 3)
    for sequence in deleted:
        del world.ledger.checkpoints[sequence]
    pay(world, key="after the deletion")
    signatures.clear()
    assert write_checkpoints([world.deps])["refused"] == 1
    assert signatures == []
    assert _table_and_copy(world) == (sorted({1, 2, 3} - set(deleted)), [1, 2, 3])


def test_a_checkpoint_stored_under_a_later_checkpoints_key_is_refused_at_every_run(signatures):
    """Checkpoint 2 put again under sequence 999999: taken for the newest, it would have every run number 3 again,
    each unable to put what the copy already holds."""
    world = fake_world(FakeGateway())
    _checkpointed(world, 2)
    world.ledger.checkpoints[999_999] = world.ledger.checkpoints[2]
    signatures.clear()
    for n in range(3):
        pay(world, key=f"after the copy {n}")
        assert write_checkpoints([world.deps])["refused"] == 1
    assert signatures == []
    assert _table_and_copy(world) == ([1, 2, 999_999], [1, 2])


def test_a_checkpoint_the_table_holds_otherwise_than_the_copy_after_the_run_put_it_is_refused(monkeypatch):
    """Another checkpoint 2 put in the table between the run's copy and its table write: the run ends without the
    copy's checkpoint in the table, which is not a race it lost to another run."""
    world = fake_world(FakeGateway())
    _checkpointed(world, 1)
    pay(world)
    keep = FakeCheckpointArchive.keep

    def kept_then_taken_in_the_table(archive, checkpoint):
        keep(archive, checkpoint)
        other = replace(checkpoint, body=checkpoint.body | {"created_at": "2030-01-01T00:00:00.000Z"})
        world.ledger.checkpoints[checkpoint.sequence] = other

    monkeypatch.setattr(FakeCheckpointArchive, "keep", kept_then_taken_in_the_table)
    assert write_checkpoint(world.deps) == "refused"
    monkeypatch.undo()
    assert write_checkpoint(world.deps) == "refused"  # and so is every run after it, until the table is mended
