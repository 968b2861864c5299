"""Attack: the signed checkpoints (GET /ledger/checkpoints/latest, GET /ledger/public-key, the scheduled checkpoint
function) break their promises.

- The signing key changes (replaced by Terraform, or a new key put behind the alias): a ledger that did not move
  since its last checkpoint gets no new one ("unchanged" compares roots only), so GET /ledger/checkpoints/latest
  keeps serving a checkpoint signed by the old key while GET /ledger/public-key serves the new one: a client
  holding only what the API serves can no longer check the newest checkpoint. Fixed when a run re-signs a
  checkpoint whose ``key_id`` is not the signer's.
- README "a run reads the newest checkpoint before the heads, so no chain ever goes back between two checkpoints":
  the run trusts the heads it reads, so a head rolled back by someone with table access (its entries truncated)
  is signed as is, and the key puts its signature on a ledger that contradicts the checkpoint before it (a signed
  rollback a client fetching the newest checkpoint receives). Fixed when the run refuses (logs, counts an error)
  heads behind its newest checkpoint instead of signing them."""

import itertools
from dataclasses import replace

from lambdas.domain.chains import Head
from lambdas.domain.checkpoints import signature_holds
from lambdas.service import PaymentService
from lambdas.use_cases.checkpoints import write_checkpoint
from tests.fakes import FakeSigner, fake_world
from tests.fakes_gateway import FakeGateway
from tests.test_use_cases import pay


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
