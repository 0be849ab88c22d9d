"""One shard's pipeline: bounded queues between fixed pools of named tasks.

::

    reader ──(hashed items)──▶ dedup queue ──▶ deduper ──┐  check-duplicates, <= 250 a call
       │                                                 ▼
       └────────(other items)─────────────────▶ dispatch ├─▶ batcher ──▶ batch uploaders
                                                         └─▶ singles ──▶ single uploaders
    outcomes ──▶ accounting ──▶ results writer (a part, then the checkpoint)

The reader skips ordinals the checkpoint marks done and decides ``skipped_unsupported``
without any request. Every queue is bounded (``worker.queue_size``), so a slow API holds
the reader back instead of filling memory. Upload requests in flight are capped by one
semaphore (``worker.concurrency``) shared by both uploader pools; a batch's
session-results fetch runs outside it (twice as many batch uploaders as slots keep the
slots busy meanwhile); every request's pace is set by the limiter inside the API client.
Shutdown is rclone's: the reader ends, the deduper closes the batcher and the singles
queue, each pool drains and returns. :meth:`ShardPipeline.stop` instead cancels every
task and waits (with a timeout, naming what got stuck): transfers still open are closed
without an outcome and re-sent by the next run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable

from ingest.items import Item, Outcome
from ingest.settings import WorkerSettings
from ingest.state.records import Checkpoint
from ingest.worker.accounting import Accounting
from ingest.worker.batcher import Batcher, Pending
from ingest.worker.clock import SYSTEM_CLOCK, Clock
from ingest.worker.naming import Route, upload_fields
from ingest.worker.uploads import Uploader

log = logging.getLogger(__name__)

DEDUP_BATCH = 250  # hashes per check-duplicates call (the API takes up to 500)
_END = None


class ShardPipeline:
    """Uploads ``items`` (ordinal, item) that ``checkpoint`` does not mark done.

    The worker's settings and the books are the uploader's (one of each per shard);
    ``files_per_batch`` is the tier's cap already applied (``Settings.files_per_batch``).
    """

    def __init__(
        self,
        items: Iterable[tuple[int, Item]],
        checkpoint: Checkpoint,
        uploader: Uploader,
        *,
        files_per_batch: int,
        namespace: str,
        linger: float = 0.05,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        w = uploader.worker
        self.items = items
        self.checkpoint = checkpoint
        self.uploader = uploader
        self.accounting: Accounting = uploader.accounting
        self.worker: WorkerSettings = w
        self.namespace = namespace
        self.dedup = w.check_duplicates
        self.batcher = Batcher(
            max_files=files_per_batch,
            max_bytes=w.batch_max_bytes,
            linger=linger,
            queue_size=w.queue_size,
            clock=clock,
        )
        self.singles: asyncio.Queue[Pending | None] = asyncio.Queue(maxsize=w.queue_size)
        self.hashed: asyncio.Queue[Pending | None] = asyncio.Queue(maxsize=w.queue_size)
        self.in_flight = asyncio.Semaphore(w.concurrency)
        self.tasks: list[asyncio.Task[None]] = []

    # --- stages ---------------------------------------------------------------------------

    # End markers are sent only when a stage finishes its input. On an error or a cancel
    # run() stops every stage at once: nobody is left to take a marker, and a put into a
    # full queue (or the batcher's inbox) would hang until stop()'s grace ran out, 10 s of
    # a SIGTERM's grace period (the kill tests saw it).

    async def _read(self) -> None:
        for ordinal, item in self.items:
            if self.checkpoint.is_done(ordinal):
                continue
            fields = upload_fields(item, self.worker, self.namespace)
            p = Pending(ordinal, item, fields)
            if fields.route is Route.UNSUPPORTED:
                self.accounting.record(
                    ordinal, item, Outcome.SKIPPED_UNSUPPORTED, reason="format not accepted"
                )
            elif self.dedup and item.sha256:
                await self.hashed.put(p)
            else:
                await self._dispatch(p)
            await asyncio.sleep(0)  # a long run of skips must not starve the loop
        await self.hashed.put(_END)

    async def _dispatch(self, p: Pending) -> None:
        if p.fields.route is Route.BATCH:
            await self.batcher.put(p)
        else:
            await self.singles.put(p)

    async def _deduplicate(self) -> None:
        """Known duplicates end as ``skipped_duplicate`` without being read; the last
        producer, so it closes the uploaders' inputs."""
        ended = False
        while not ended:
            first = await self.hashed.get()
            if first is _END:
                break
            group = [first]
            while len(group) < DEDUP_BATCH:
                try:
                    nxt = self.hashed.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if nxt is _END:
                    ended = True
                    break
                group.append(nxt)
            await self._check(group)
        await self.batcher.close()
        for _ in range(self.worker.concurrency):
            await self.singles.put(_END)

    async def _check(self, group: list[Pending]) -> None:
        hashes = sorted({p.item.sha256 for p in group if p.item.sha256})
        async with self.in_flight:
            answer = await self.uploader.client.check_duplicates(hashes)
        known = {h.lower() for h in answer.duplicates}
        intents = self.uploader.intents
        for p in group:
            # an item an earlier worker sent may be held because we stored it: re-send it
            # and let its "skipped" answer be judged (ingest/worker/intents.py)
            sent_before = intents is not None and intents.prior(p.ordinal) is not None
            if p.item.sha256 in known and not sent_before:
                self.accounting.record(
                    p.ordinal, p.item, Outcome.SKIPPED_DUPLICATE, reason="hash already held"
                )
            else:
                await self._dispatch(p)

    async def _upload_batches(self) -> None:
        while (batch := await self.batcher.next_batch()) is not None:
            await self.uploader.send_batch(batch, self.in_flight)

    async def _upload_singles(self) -> None:
        while (p := await self.singles.get()) is not None:
            async with self.in_flight:
                await self.uploader.send_single(p)

    def queue_depths(self) -> dict[str, int]:
        """Items waiting in each queue, by name (read by metrics at scrape time)."""
        return {
            "dedup": self.hashed.qsize(),
            "batcher": self.batcher.waiting,
            "singles": self.singles.qsize(),
        }

    # --- lifecycle ------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        self.tasks.append(asyncio.ensure_future(coro))
        self.tasks[-1].set_name(name)

    async def run(self) -> None:
        """Upload everything; the first error from any task stops all and is raised."""
        n = self.worker.concurrency
        self._spawn(self._read(), "shard-reader")
        self._spawn(self._deduplicate(), "deduplicator")
        # Twice as many batch uploaders as slots: one waiting for its session results
        # holds no slot, and another must be there to fill it meanwhile.
        for i in range(2 * n):
            self._spawn(self._upload_batches(), f"batch-uploader-{i}")
        for i in range(n):
            self._spawn(self._upload_singles(), f"single-uploader-{i}")
        try:
            pending = set(self.tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            await self.stop()

    async def stop(self, grace: float = 10.0) -> None:
        """Cancel every task still running and wait for them, naming any that hang."""
        alive = [t for t in self.tasks if not t.done()]
        for task in alive:
            task.cancel()
        if not alive:
            return
        _, stuck = await asyncio.wait(alive, timeout=grace)
        if stuck:
            log.warning(
                "tasks still running %.0fs after cancel: %s",
                grace,
                ", ".join(sorted(t.get_name() for t in stuck)),
            )
