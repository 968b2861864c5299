"""The scheduled checkpoint run keeps what GET /ledger/checkpoints/latest and GET /ledger/public-key serve checkable
together, and never signs a ledger that went back.

- After the signing key changes (replaced by Terraform, or a new key put behind the alias), a run signs again even
  a ledger that did not move, so the newest checkpoint checks with the public key the API serves.
- A run trusts no head behind its newest checkpoint: a head rolled back by someone with table access (its entries
  truncated) is refused (logged, counted as an error), never signed."""

import itertools
from dataclasses import replace

from lambdas.domain.chains import Head
from lambdas.domain.checkpoints import signature_holds
from lambdas.service import PaymentService
from lambdas.use_cases.checkpoints import write_checkpoint
from tests.support.fakes import FakeSigner, fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.payments import pay


def test_after_the_signing_key_changes_the_served_checkpoint_checks_with_the_served_public_key():
    world = fake_world(FakeGateway())
    assert write_checkpoint(world.deps) == "written"  # signed by the first key
    new_key = FakeSigner()
    new_key.key_id = "arn:aws:kms:us-east-1:123456789012:key/the-replacing-key"
    deps = replace(world.deps, signer=new_key)
    write_checkpoint(deps)  # the next scheduled run, with the new key; the ledger did not move
    service = PaymentService(deps)
    served, key = service.latest_checkpoint().body, service.public_key().body
    assert served["key_id"] == key["key_id"], "the newest checkpoint names a key the API no longer serves"
    assert signature_holds(served, key["pem"])


def test_the_job_never_signs_a_chain_gone_back_from_its_newest_checkpoint():
    world = fake_world(FakeGateway())
    pay(world)
    assert write_checkpoint(world.deps) == "written"
    (chain,) = world.ledger.heads
    world.ledger.heads[chain] = Head(chain)  # table access: the head rolled back (its entries truncated)
    write_checkpoint(world.deps)
    checkpoints = list(world.deps.store.checkpoints())
    for before, after in itertools.pairwise(checkpoints):
        went_back = [c for c, (b, a) in enumerate(zip(before.chains, after.chains, strict=True))
                     if a["sequence"] < b["sequence"]]  # fmt: skip
        assert not went_back, f"checkpoint {after.sequence} is signed with chain {went_back[0]} gone back"
