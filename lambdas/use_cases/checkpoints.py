"""Scheduled: a signed checkpoint of each merchant's ledger; and GET /ledger/checkpoints/latest and
GET /ledger/public-key.

A run reads the newest checkpoint *before* the heads, so a checkpoint written by an overlapping run that it then
numbers after was made from heads no newer than its own: checkpoints never see a chain go back. Each checkpoint is
kept in the write-once copy before the table has it, so the copy never lacks one the table has. Two runs that
number the same checkpoint meet on its name in the copy: the later one writes nothing of its own and puts the
kept one in the table (as it does for a run that stopped between the two writes). A ledger that has not moved since
its newest checkpoint gets none (that checkpoint still commits to every entry). A run builds only on a newest
checkpoint that the copy holds as the table does, signed by the key; anything else it refuses (the alarm's count)."""

import base64
import random
from collections.abc import Sequence
from typing import Any

from lambdas import deadline
from lambdas.domain.chains import canonical, positions, root_of
from lambdas.domain.checkpoints import (
    Checkpoint,
    link_to,
    not_extended,
    signature_holds,
    signed_bytes,
    unsigned_checkpoint,
)
from lambdas.domain.errors import InvalidRequest, NotFound
from lambdas.logs import logger
from lambdas.ports import ArchiveTaken, LostRace, MisfiledCheckpoint, UoW
from lambdas.use_cases import Dependencies
from lambdas.use_cases.reads import page_size

OUTCOMES = ("written", "unchanged", "raced", "refused", "errors", "deferred")  # what a run counts
# The least time worth starting a merchant with: its reads (the newest checkpoint, the copy's under its sequence and
# the next, the heads, the entry where it signed each chain that moved), a signature, the copy and a write, each of
# which may take bootstrap.AWS_CLIENT_CONFIG's worst case (2 attempts of 1 s connect + 5 s read); they usually take
# milliseconds.
MERCHANT_SECONDS = 12.0


def write_checkpoint(deps: Dependencies[UoW]) -> str:
    """The merchant's next checkpoint, signed, kept in the write-once copy, then put in the table (one of
    ``OUTCOMES``). A newest checkpoint signed by another key (the signing key was replaced) is signed again, so the
    newest always checks with the key the API serves. A ledger that does not extend its newest checkpoint (a chain
    shorter than it signed, or with another entry where it signed one: truncated, maybe grown again) is never
    signed: the run refuses and logs the chains, and `make verify` names the break.

    The table's newest checkpoint is built on only as the copy keeps it, byte for byte, and with a signature that
    holds (``_held``); one stored under another's sequence is never taken for the newest. A copy that already holds
    the next checkpoint (another run's, or one that stopped before the table) is put in the table without signing;
    one that holds more than that (checkpoints deleted from the table) is refused. Each asks the key for nothing."""
    latest, outcome = _newest(deps)
    if outcome:
        return outcome
    heads = deps.store.heads()
    now = positions(heads)
    if latest and latest.root == root_of(now) and latest.body["key_id"] == deps.signer.key_id:
        return "unchanged"
    if latest and _refused(deps, latest, now):
        return "refused"
    unsigned = unsigned_checkpoint(deps.store.merchant, latest, heads, deps.clock(), deps.signer.key_id)
    signature = base64.b64encode(deps.signer.sign(signed_bytes(unsigned))).decode()
    checkpoint = Checkpoint(unsigned | {"signature": signature}, now)
    try:
        deps.archive.keep(checkpoint)
    except ArchiveTaken:
        return _after_taken(deps, latest, checkpoint.sequence)
    return _put(deps, checkpoint)


def _newest(deps: Dependencies[UoW]) -> tuple[Checkpoint | None, str | None]:
    """The table's newest checkpoint, to build on; or the run's outcome when it may not build on it (refused), or
    the copy holds the checkpoint after it already (put in the table, as ``_after_taken``)."""
    try:
        latest = deps.store.latest_checkpoint()
    except MisfiledCheckpoint as misfiled:
        logger.error("a checkpoint is stored under another one's key", extra={"sort_key": misfiled.sort_key})
        return None, "refused"
    if latest and not _held(deps, latest):
        return latest, "refused"
    following = latest.sequence + 1 if latest else 1
    if deps.archive.kept(following) is None:
        return latest, None
    if deps.archive.kept(following + 1) is not None:
        logger.error("the table lacks checkpoints the write-once copy holds", extra={"sequence": following})
        return latest, "refused"
    return latest, _after_taken(deps, latest, following)


def _held(deps: Dependencies[UoW], latest: Checkpoint) -> bool:
    """Whether the table's newest checkpoint is the one the write-once copy keeps under its sequence, and, when it
    names the signing key, signed by it (one signed by a replaced key is held to the copy alone); logged when not."""
    if not _same(deps.archive.kept(latest.sequence), latest):
        logger.error("the newest checkpoint is not the write-once copy's", extra={"sequence": latest.sequence})
        return False
    if latest.body.get("key_id") == deps.signer.key_id and not signature_holds(
        latest.body, deps.signer.public_key_pem()
    ):
        logger.error("the newest checkpoint's signature is not the key's", extra={"sequence": latest.sequence})
        return False
    return True


def _same(one: Checkpoint | None, other: Checkpoint | None) -> bool:
    """Byte for byte, as canonical JSON: the signed body and the chain positions."""
    if one is None or other is None:
        return one is other
    return canonical({"checkpoint": one.body, "chains": one.chains}) == canonical(
        {"checkpoint": other.body, "chains": other.chains}
    )


def _refused(deps: Dependencies[UoW], latest: Checkpoint, now: list[dict[str, Any]]) -> bool:
    """Whether the ledger as it stands (``now``) may not be signed after ``latest``, logged when so."""
    if root_of(latest.chains) != latest.root:
        logger.error("the newest checkpoint's chain positions are not those its root commits to")
        return True
    changed = not_extended(latest, now, deps.store.hash_at)
    if changed:
        logger.error("chains do not extend the newest checkpoint", extra={"chains": changed})
    return bool(changed)


def _put(deps: Dependencies[UoW], checkpoint: Checkpoint) -> str:
    """``checkpoint`` (the copy's) put in the table: ``written``; ``raced`` when the table has it already (another
    run put it); ``refused`` when the table holds another checkpoint under its sequence, which no run can mend."""
    uow = deps.store.unit_of_work()
    deps.store.add_checkpoint(uow, checkpoint)
    try:
        uow.commit()
    except LostRace:
        try:
            there = deps.store.checkpoint(checkpoint.sequence)
        except MisfiledCheckpoint:
            there = None
        if not _same(there, checkpoint):
            logger.error("the table holds another checkpoint under the copy's", extra={"sequence": checkpoint.sequence})
            return "refused"
        return "raced"
    return "written"


def _after_taken(deps: Dependencies[UoW], latest: Checkpoint | None, sequence: int) -> str:
    """The copy holds ``sequence`` already: another run's checkpoint (it got there first, or stopped before the
    table). One that follows the table's newest is put in the table too, and the ledger is held to it (heads read
    again: now at least as new as those it was made from); anything else under that name, or a table that will not
    hold it, is refused."""
    kept = deps.archive.kept(sequence)
    if kept is None:
        return "raced"  # still being written
    follows = kept.body.get("previous") == (link_to(latest.body) if latest else None)
    if not follows or kept.body.get("merchant") != deps.store.merchant or root_of(kept.chains) != kept.root:
        logger.error("the write-once copy holds another checkpoint under this sequence", extra={"sequence": sequence})
        return "refused"
    if _put(deps, kept) == "refused":
        return "refused"
    return "refused" if _refused(deps, kept, positions(deps.store.heads())) else "raced"


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
            logger.exception("checkpoint failed", extra={"merchant": deps.store.merchant})
            counts["errors"] += 1
    return counts


def latest_checkpoint(deps: Dependencies[UoW]) -> Checkpoint:
    latest = deps.store.latest_checkpoint()
    if latest is None:
        raise NotFound("No checkpoint yet: the first is written within minutes of the deployment.")
    return latest


def list_checkpoints(
    deps: Dependencies[UoW], limit: str | None, starting_after: str | None
) -> tuple[list[Checkpoint], bool]:
    """A page of the merchant's checkpoints, newest first; ``starting_after`` is the previous page's last sequence."""
    size = page_size(limit)
    cursor = None
    if starting_after is not None:
        cursor = _sequence(starting_after)
        if cursor is None or deps.store.checkpoint(cursor) is None:
            raise InvalidRequest("starting_after must be the sequence of one of your checkpoints.", "starting_after")
    return deps.store.list_checkpoints(size, cursor)


def get_checkpoint(deps: Dependencies[UoW], sequence: str) -> Checkpoint:
    number = _sequence(sequence)
    checkpoint = deps.store.checkpoint(number) if number is not None else None
    if checkpoint is None:
        raise NotFound("No such checkpoint.")  # the path is not repeated: it may be anything
    return checkpoint


def _sequence(text: str) -> int | None:
    """A checkpoint's sequence as a path or query gives it (1, 2, ...); None when it cannot be one."""
    if text.isascii() and text.isdigit() and len(text) < 19 and int(text) >= 1:  # none reaches 2**63
        return int(text)
    return None
