"""Scheduled: a signed checkpoint of each merchant's ledger; and GET /ledger/checkpoints/latest and
GET /ledger/public-key.

A run reads the newest checkpoint *before* the heads, so a checkpoint written by an overlapping run that it then
numbers after was made from heads no newer than its own: checkpoints never see a chain go back. Two runs that
number the same checkpoint meet on its key, and the later one writes nothing. A ledger that has not moved since
its newest checkpoint gets none (that checkpoint still commits to every entry)."""

import base64
import random
from collections.abc import Sequence

from lambdas import deadline
from lambdas.domain.chains import positions
from lambdas.domain.checkpoints import Checkpoint, signed_bytes, unsigned_checkpoint
from lambdas.domain.errors import NotFound
from lambdas.logs import logger
from lambdas.ports import Answer, LostRace, UoW
from lambdas.use_cases import Dependencies

OUTCOMES = ("written", "unchanged", "raced", "refused", "errors", "deferred")  # what a run counts
# The least time worth starting a merchant with: two reads, a signature and a write, each of which may take
# bootstrap.AWS_CLIENT_CONFIG's worst case (2 attempts of 1 s connect + 5 s read); they usually take milliseconds.
MERCHANT_SECONDS = 12.0


def write_checkpoint(deps: Dependencies[UoW]) -> str:
    """The merchant's next checkpoint, signed and put (one of ``OUTCOMES``). A newest checkpoint signed by another
    key (the signing key was replaced) is signed again, so the newest always checks with the key the API serves.
    Heads behind the newest checkpoint (a chain gone back: someone truncated it) are never signed: the run refuses
    and logs the chain, and `make verify` names the break."""
    latest = deps.store.latest_checkpoint()
    heads = deps.store.heads()
    unsigned = unsigned_checkpoint(latest.sequence + 1 if latest else 1, heads, deps.clock(), deps.signer.key_id)
    if latest and latest.root == unsigned["root"] and latest.body["key_id"] == deps.signer.key_id:
        return "unchanged"
    now = positions(heads)
    if latest:
        went_back = [c["chain"] for c, then in zip(now, latest.chains, strict=True) if c["sequence"] < then["sequence"]]
        if went_back:
            logger.error("chains went back since the newest checkpoint", extra={"chains": went_back})
            return "refused"
    signature = base64.b64encode(deps.signer.sign(signed_bytes(unsigned))).decode()
    uow = deps.store.unit_of_work()
    deps.store.add_checkpoint(uow, Checkpoint(unsigned | {"signature": signature}, now))
    try:
        uow.commit()
    except LostRace:
        return "raced"
    return "written"


def write_checkpoints(merchants: Sequence[Dependencies[UoW]]) -> dict[str, int]:
    """Every merchant's checkpoint, in a random order, until the run's deadline is near (``deferred``: the next run
    takes them); one merchant's error does not stop the others."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for deps in random.sample(list(merchants), len(merchants)):
        if deadline.remaining() < MERCHANT_SECONDS:
            counts["deferred"] += 1
            continue
        try:
            counts[write_checkpoint(deps)] += 1
        except Exception:
            logger.exception("checkpoint failed")
            counts["errors"] += 1
    return counts


def latest_checkpoint(deps: Dependencies[UoW]) -> Answer:
    latest = deps.store.latest_checkpoint()
    if latest is None:
        raise NotFound("No checkpoint yet: the first is written within minutes of the deployment.")
    return Answer(200, latest.body)


def public_key(deps: Dependencies[UoW]) -> Answer:
    return Answer(200, {"key_id": deps.signer.key_id, "pem": deps.signer.public_key_pem()})
