"""How far a shard got, and who owns it.

A :class:`Checkpoint` says which ordinals of a shard have an outcome: every ordinal below
the low-water mark ``low``, plus the ``done`` ordinals above it. Items finish out of order
(a 1 GiB upload next to thousands of 64 KiB ones), so the set above ``low`` can grow; it is
written as runs of consecutive ordinals (``[[start, end), ...]``), which stays a handful of
pairs however many items finish around one slow item.

Zombie detection: the checkpoint's compare-and-swap, not a lease. A worker starting on an
index reads the checkpoint (with its ETag) and at once writes it back with ``generation``
+ 1 and its own ``worker_id`` (:meth:`CheckpointStore.claim`). From then on every write is
``replace(etag)`` on the ETag this worker last wrote, so a zombie (an older pod still
running on the same index) fails its very next write with :class:`StateConflict` and
stops, while the newer worker goes on. Why not a lease: a lease needs clocks, renewals and
a TTL, and a paused zombie that wakes after its lease expired may still write once before
it looks; the CAS needs no extra object and no timing assumption, and catches the zombie at
the exact write that would have gone back in time. The cost: a zombie may upload for up
to one flush interval before it notices, which is harmless because uploads are idempotent
(``skip_duplicates`` and deterministic idempotency keys).

DESIGN.md's rule holds: the checkpoint is written after the results part it covers (see
:mod:`ingest.worker.results`), so a crash between the two re-sends those items instead of
losing them.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from ingest.errors import ConfigError, StateConflict
from ingest.state.base import RunLayout, StateStore
from ingest.state.records import Checkpoint

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    """A name for this process's claim: unique per start, readable in the checkpoint."""
    return uuid.uuid4().hex[:12]


class CheckpointStore:
    """One shard's checkpoint in the state store, written only by the worker that claimed it."""

    def __init__(
        self, store: StateStore, layout: RunLayout, index: int, worker_id: str | None = None
    ) -> None:
        self.store = store
        self.path = layout.checkpoint(index)
        self.index = index
        self.worker_id = worker_id or new_worker_id()
        self._etag: str | None = None
        self._claimed = False

    async def claim(self) -> Checkpoint:
        """Read the checkpoint and take ownership of the index (generation + 1).

        Raises StateConflict when another worker wrote in between (two fresh pods racing
        for one index: the loser stops).
        """
        blob = await self.store.get(self.path)
        if blob is None:
            cp = Checkpoint()
        else:
            try:
                cp = Checkpoint.from_bytes(blob.data)
            except ValueError as exc:
                # Retrying cannot mend it: stop the Job (exit 2) with the way out.
                raise ConfigError(
                    f"{self.path}: {exc}; delete that file to redo shard {self.index} "
                    "(re-sent items are skipped as duplicates)"
                ) from None
            self._etag = blob.etag
        previous = cp.worker_id
        cp.generation += 1
        cp.worker_id = self.worker_id
        await self._write(cp)
        self._claimed = True
        log.info(
            "claimed shard %d (generation %d, %d done)",
            self.index,
            cp.generation,
            cp.count(),
            extra={"previous_worker": previous or None, "worker": self.worker_id},
        )
        return cp

    async def save(self, cp: Checkpoint) -> None:
        """Write ``cp`` if this worker still owns the index; StateConflict if not."""
        if not self._claimed:
            raise RuntimeError("claim() the checkpoint before saving it")
        cp.worker_id = self.worker_id
        await self._write(cp)

    async def _write(self, cp: Checkpoint) -> None:
        cp.updated_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        data = cp.to_bytes()
        try:
            if self._etag is None:
                self._etag = await self.store.create(self.path, data)
            else:
                self._etag = await self.store.replace(self.path, data, self._etag)
        except StateConflict:
            raise StateConflict(
                f"shard {self.index}'s checkpoint was written by another worker: this worker "
                f"({self.worker_id}) is stale and stops; the newer one carries on"
            ) from None
