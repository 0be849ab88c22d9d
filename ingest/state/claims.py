"""A checkpoint's claims checked against the results parts (issue 13, point 15).

The worker writes each results part before the checkpoint covering it, so normally every
ordinal a checkpoint calls done has a stored outcome. A checkpoint edited by hand, a store
that lost a part, or a part that is damaged break that; without this check ``resume``
trusts the checkpoint, calls the shard complete, and the items are never sent. Here the
claims are cut down to the ordinals with an outcome; the rest are redone (the API's
``skip_duplicates`` and idempotency keys make a re-send harmless).
"""

from __future__ import annotations

import logging

from ingest.state.base import RunLayout, StateStore
from ingest.state.records import Checkpoint, read_checkpoint, read_results

log = logging.getLogger(__name__)


async def backed_claims(
    store: StateStore, layout: RunLayout, index: int, checkpoint: Checkpoint
) -> Checkpoint:
    """The done ordinals of ``checkpoint`` that have an outcome in the results parts
    (damaged parts are named in a warning and count as having none)."""
    if checkpoint.count() == 0:
        return Checkpoint()
    damaged: list[str] = []
    results = await read_results(store, layout, index, damaged)
    for where in damaged:
        log.warning("results part %s is damaged: its items will be redone", where)
    backed = Checkpoint()
    backed.add_all(o for o in results if checkpoint.is_done(o))
    return backed


async def stored_backed_claims(store: StateStore, layout: RunLayout, index: int) -> Checkpoint:
    """Shard ``index``'s stored checkpoint cut down to the ordinals with an outcome."""
    claimed = await read_checkpoint(store, layout.run_id, index)
    return await backed_claims(store, layout, index, claimed)


async def verify_claims(
    store: StateStore, layout: RunLayout, index: int, checkpoint: Checkpoint
) -> int:
    """Cut ``checkpoint`` down (in place) to the ordinals with a stored outcome; returns
    how many claims were dropped."""
    backed = await backed_claims(store, layout, index, checkpoint)
    dropped = checkpoint.count() - backed.count()
    if dropped:
        log.warning(
            "shard %d: the checkpoint claims %d done items that have no stored outcome; "
            "they will be redone",
            index,
            dropped,
        )
        checkpoint.low, checkpoint.done = backed.low, backed.done
    return dropped
