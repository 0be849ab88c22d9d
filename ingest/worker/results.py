"""Results: each shard's outcomes, written as immutable parts, then its checkpoint.

Outcomes are buffered and flushed as a new part (``results/<index>/part-NNNNNN.jsonl.gz``,
gzip JSON lines of :meth:`ItemResult.to_json`) every ``flush_seconds`` or ``flush_items``,
and on demand (SIGTERM). A part is written with ``create``, never rewritten: a crash
mid-flush leaves either the whole part or none, and two writers (a zombie) can never
clobber each other's part. After the part, the checkpoint covering it is written (DESIGN:
checkpoint after results), so the checkpoint never claims an ordinal whose outcome is not
stored; the reverse (a part whose checkpoint was lost) only makes a restart re-send items,
which the API answers as duplicates.

Reading back (:func:`read_results`): an ordinal may appear in several parts (re-sent after a
crash, with the same or an updated outcome); the latest part wins, so the report holds
every ordinal exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ingest.errors import StateConflict
from ingest.items import ItemResult
from ingest.state.base import RunLayout, StateStore
from ingest.state.records import Checkpoint, encode_part, list_parts
from ingest.worker.checkpoint import CheckpointStore
from ingest.worker.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

# Parts taken by someone else (a zombie finishing its flush) before we give up: each
# conflict means a writer we do not know about is alive; more than a few is no accident.
_MAX_PART_CONFLICTS = 8


class ResultsWriter:
    """Buffers one shard's outcomes; :meth:`flush` writes a part, then the checkpoint.

    Call :meth:`open` first (it finds the part number to continue from). ``add`` is
    synchronous and cheap; the caller flushes when :meth:`due` says so, and
    :meth:`run_timer` flushes on time in the background. Flushes are serialised.
    """

    def __init__(
        self,
        store: StateStore,
        layout: RunLayout,
        index: int,
        checkpoints: CheckpointStore,
        checkpoint: Checkpoint,
        *,
        flush_seconds: float = 5.0,
        flush_items: int = 500,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.layout = layout
        self.index = index
        self.checkpoints = checkpoints
        self.checkpoint = checkpoint
        self.flush_seconds = flush_seconds
        self.flush_items = flush_items
        self.clock = clock
        self._buffer: list[ItemResult] = []
        self._next_part = 0
        self._lock = asyncio.Lock()
        self._last_flush = clock.monotonic()
        self.full = asyncio.Event()  # set when flush_items outcomes wait
        # parts written whose checkpoint save failed (not a conflict): saved next flush
        self._checkpoint_due = False
        self.parts_written = 0
        self.results_written = 0
        # called after each checkpoint save (the intent records it covers are deleted)
        self.on_saved: Callable[[Checkpoint], Awaitable[object]] | None = None

    async def open(self) -> None:
        """Continue numbering after the highest existing part (a restart, or a zombie's)."""
        parts = await list_parts(self.store, self.layout, self.index)
        self._next_part = parts[-1][0] + 1 if parts else 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def add(self, result: ItemResult) -> None:
        self._buffer.append(result)
        if len(self._buffer) >= self.flush_items:
            self.full.set()

    def due(self) -> bool:
        """Whether enough outcomes or time have gathered for a flush."""
        if not self._buffer:
            return False
        return (
            len(self._buffer) >= self.flush_items
            or self.clock.monotonic() - self._last_flush >= self.flush_seconds
        )

    async def flush(self) -> int:
        """Write buffered outcomes as one part, then the checkpoint. Returns how many.

        StateConflict from the checkpoint means this worker is stale: it propagates. Any
        other failure puts the outcomes back (or keeps the checkpoint due) so the next
        flush writes them.
        """
        async with self._lock:
            batch, self._buffer = self._buffer, []
            self.full.clear()
            self._last_flush = self.clock.monotonic()
            if batch:
                try:
                    await self._write_part(batch)
                except BaseException:
                    self._buffer[:0] = batch
                    raise
                self.results_written += len(batch)
                self.checkpoint.add_all(r.ordinal for r in batch)
                self._checkpoint_due = True
            if not self._checkpoint_due:
                return 0
            await self.checkpoints.save(self.checkpoint)
            self._checkpoint_due = False
            if self.on_saved is not None:
                await self.on_saved(self.checkpoint)
            log.debug(
                "flushed %d results of shard %d (part %d)",
                len(batch),
                self.index,
                self._next_part - 1,
            )
            return len(batch)

    async def _write_part(self, batch: list[ItemResult]) -> None:
        data = encode_part(batch)
        for _ in range(_MAX_PART_CONFLICTS):
            path = self.layout.results_part(self.index, self._next_part)
            self._next_part += 1
            try:
                await self.store.create(path, data)
            except StateConflict:
                log.warning("results part %s exists already (another writer?); next", path)
                continue
            self.parts_written += 1
            return
        raise StateConflict(
            f"shard {self.index}: {_MAX_PART_CONFLICTS} results parts in a row were taken by "
            "another writer; another worker is running on this index, this one stops"
        )

    async def stop_background(self, tasks: Sequence[asyncio.Task[None]]) -> None:
        """Cancel the background flushers (:meth:`run_timer` and the like) between flushes,
        never inside one.

        A checkpoint write cancelled after the store applied it but before its new ETag was
        noted leaves this worker with a stale ETag: its next write then fails as if a zombie
        had claimed the index (the kill tests saw exactly that at the end of a shard). So
        wait for the flush in progress, then cancel while holding the lock.
        """
        async with self._lock:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def flush_if_due(self) -> int:
        return await self.flush() if self.due() else 0

    async def run_timer(self) -> None:
        """Flush every ``flush_seconds`` while outcomes wait (run as a task; cancel to stop)."""
        while True:
            wait = self._last_flush + self.flush_seconds - self.clock.monotonic()
            if wait > 0:
                await self.clock.sleep(wait)
                continue
            if self._buffer or self._checkpoint_due:
                await self.flush()
            else:
                self._last_flush = self.clock.monotonic()
