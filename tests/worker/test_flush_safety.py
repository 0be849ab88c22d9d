"""Flushes that are cancelled or fail half-way: found by the kill tests, pinned here.

Shutdown used to cancel a background flush inside its checkpoint write: when the store had
applied the write, the writer kept the old ETag and its final flush failed as if a zombie
had claimed the index (exit 1 instead of 0 at the end of a shard).
"""

from __future__ import annotations

import asyncio

from ingest.errors import RetryableError
from ingest.items import ItemResult, Outcome
from ingest.state.base import RunLayout
from ingest.state.records import Checkpoint
from ingest.worker.checkpoint import CheckpointStore
from ingest.worker.results import ResultsWriter
from tests.worker.fakeclock import FakeClock
from tests.worker.memstore import MemoryStateStore

LAYOUT = RunLayout("run-1")


class GatedStore(MemoryStateStore):
    """Checkpoint replaces are applied, then wait on ``gate`` before answering (a slow
    store whose write landed), or fail once after applying nothing (``fail_next``)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None
        self.inside = asyncio.Event()
        self.fail_next = False

    async def replace(self, path: str, data: bytes, etag: str) -> str:
        if self.fail_next:
            self.fail_next = False
            raise RetryableError("state store unreachable")
        new_etag = await super().replace(path, data, etag)
        if self.gate is not None:
            self.inside.set()
            await self.gate.wait()
        return new_etag


async def _writer(store: GatedStore) -> ResultsWriter:
    cps = CheckpointStore(store, LAYOUT, 0, worker_id="w")
    cp = await cps.claim()
    writer = ResultsWriter(store, LAYOUT, 0, cps, cp, clock=FakeClock())
    await writer.open()
    return writer


def _result(o: int) -> ItemResult:
    return ItemResult(ordinal=o, key=f"k/{o}.jpg", size=1, outcome=Outcome.UPLOADED)


def _stored_checkpoint(store: GatedStore) -> Checkpoint:
    return Checkpoint.from_bytes(store.objects[LAYOUT.checkpoint(0)])


async def test_stopping_the_background_flushers_lets_a_flush_in_progress_finish() -> None:
    store = GatedStore()
    writer = await _writer(store)
    writer.add(_result(0))
    store.gate = asyncio.Event()
    background = asyncio.ensure_future(writer.flush())
    await store.inside.wait()  # the checkpoint write has landed, its answer is pending
    stopping = asyncio.ensure_future(writer.stop_background([background]))
    await asyncio.sleep(0)
    assert not stopping.done()  # waits for the flush instead of cutting it off
    store.gate.set()
    await stopping
    assert background.result() == 1
    store.gate = None
    writer.add(_result(1))
    assert await writer.flush() == 1  # not StateConflict: the first flush's ETag was kept
    assert _stored_checkpoint(store).low == 2


async def test_a_failed_checkpoint_save_is_retried_by_the_next_flush() -> None:
    store = GatedStore()
    writer = await _writer(store)
    writer.add(_result(0))
    store.fail_next = True
    try:
        await writer.flush()
    except RetryableError:
        pass
    else:
        raise AssertionError("the failing save should have raised")
    assert _stored_checkpoint(store).low == 0  # the part is stored, the checkpoint lags
    await writer.flush()  # nothing new buffered, but the checkpoint is still due
    assert _stored_checkpoint(store).low == 1
