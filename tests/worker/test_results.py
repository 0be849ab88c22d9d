"""Results parts: immutable, numbered on from restarts, written before the checkpoint."""

from __future__ import annotations

import asyncio

import pytest

from ingest.errors import RetryableError, StateConflict
from ingest.items import FailureCode, ItemResult, Outcome, PendingId
from ingest.state.base import RunLayout
from ingest.state.records import Checkpoint, decode_part, encode_part, list_parts, read_results
from ingest.worker.checkpoint import CheckpointStore
from ingest.worker.results import ResultsWriter
from tests.worker.fakeclock import FakeClock
from tests.worker.memstore import MemoryStateStore

LAYOUT = RunLayout("run-1")


def result(o: int, outcome: Outcome = Outcome.UPLOADED, **kw: object) -> ItemResult:
    return ItemResult(ordinal=o, key=f"k/{o}.jpg", size=o * 10, outcome=outcome, **kw)  # type: ignore[arg-type]


async def make_writer(
    store: MemoryStateStore, clock: FakeClock | None = None, **kw: object
) -> ResultsWriter:
    cps = CheckpointStore(store, LAYOUT, 0, worker_id="w")
    cp = await cps.claim()
    writer = ResultsWriter(store, LAYOUT, 0, cps, cp, clock=clock or FakeClock(), **kw)  # type: ignore[arg-type]
    await writer.open()
    return writer


def test_parts_round_trip_including_unicode() -> None:
    rs = [
        result(0, image_id="abc"),
        result(
            1, Outcome.FAILED, reason="gone: é ✓", http_status=404, attempts=3, code="source_gone"
        ),
        result(2, Outcome.FAILED, reason="refused", code=FailureCode.REJECTED_IN_BATCH),
        result(3, pending=PendingId("sess-1", "3.jpg", 1700000000.25, 1700000001.5)),
    ]
    data = encode_part(rs)
    assert data[:2] == b"\x1f\x8b"
    assert decode_part(data) == rs
    assert encode_part(rs) == data  # deterministic bytes (no gzip timestamp)


async def test_flush_writes_a_part_then_the_checkpoint() -> None:
    store = MemoryStateStore()
    writer = await make_writer(store)
    for o in (0, 1, 3):
        writer.add(result(o))
    store.writes.clear()
    assert await writer.flush() == 3
    assert store.writes == [LAYOUT.results_part(0, 0), LAYOUT.checkpoint(0)]
    cp = Checkpoint.from_bytes(store.objects[LAYOUT.checkpoint(0)])
    assert (cp.low, cp.done) == (2, {3})
    assert await writer.flush() == 0  # nothing buffered: no empty part
    assert store.writes == [LAYOUT.results_part(0, 0), LAYOUT.checkpoint(0)]


async def test_flush_is_due_by_count_or_by_time() -> None:
    clock = FakeClock()
    writer = await make_writer(MemoryStateStore(), clock, flush_items=3, flush_seconds=5.0)
    assert not writer.due()
    writer.add(result(0))
    writer.add(result(1))
    assert not writer.due()
    writer.add(result(2))
    assert writer.due()
    assert await writer.flush_if_due() == 3
    writer.add(result(3))
    assert not writer.due()
    clock.advance(5.0)
    assert writer.due()
    assert await writer.flush_if_due() == 1


async def test_timer_flushes_waiting_results_every_period() -> None:
    clock = FakeClock()
    store = MemoryStateStore()
    writer = await make_writer(store, clock, flush_seconds=5.0)
    timer = asyncio.create_task(writer.run_timer())
    t0 = clock.monotonic()
    writer.add(result(0))
    while writer.parts_written == 0:
        await clock.sleep(0.5)
    assert clock.monotonic() - t0 == pytest.approx(5.0)
    await clock.sleep(30)  # idle: no empty parts
    assert writer.parts_written == 1
    timer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await timer


async def test_a_restart_numbers_parts_after_the_highest_and_reads_last_wins() -> None:
    store = MemoryStateStore()
    first = await make_writer(store)
    first.add(result(0, Outcome.FAILED, reason="timeout", attempts=6))
    first.add(result(1))
    await first.flush()
    first.add(result(2))
    await first.flush()

    second = await make_writer(store)  # after a crash: the item 0 re-sent
    second.add(result(0, image_id="img-0"))
    await second.flush()
    parts = await list_parts(store, LAYOUT, 0)
    assert [n for n, _ in parts] == [0, 1, 2]
    results = await read_results(store, LAYOUT, 0)
    assert sorted(results) == [0, 1, 2]
    assert results[0].outcome is Outcome.UPLOADED
    assert results[0].image_id == "img-0"


async def test_a_part_taken_by_another_writer_is_never_overwritten() -> None:
    store = MemoryStateStore()
    writer = await make_writer(store)
    zombie_part = encode_part([result(7)])
    store.objects[LAYOUT.results_part(0, 0)] = zombie_part
    writer.add(result(0))
    await writer.flush()
    assert store.objects[LAYOUT.results_part(0, 0)] == zombie_part
    assert decode_part(store.objects[LAYOUT.results_part(0, 1)]) == [result(0)]
    # a writer losing every part number is not alone on the index
    for n in range(2, 20):
        store.objects[LAYOUT.results_part(0, n)] = zombie_part
    writer.add(result(1))
    with pytest.raises(StateConflict, match="another worker"):
        await writer.flush()


async def test_a_failed_part_write_keeps_the_results_for_the_next_flush() -> None:
    store = MemoryStateStore()
    writer = await make_writer(store)
    real_create = store.create
    calls = 0

    async def flaky_create(path: str, data: bytes) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RetryableError("state store unreachable")
        return await real_create(path, data)

    store.create = flaky_create  # type: ignore[method-assign]
    writer.add(result(0))
    with pytest.raises(RetryableError):
        await writer.flush()
    assert writer.pending == 1
    assert not writer.checkpoint.is_done(0)
    writer.add(result(1))
    assert await writer.flush() == 2
    assert sorted(await read_results(store, LAYOUT, 0)) == [0, 1]
    assert writer.checkpoint.low == 2


async def test_a_stale_worker_learns_it_at_the_checkpoint_write() -> None:
    store = MemoryStateStore()
    old = await make_writer(store)
    await make_writer(store)  # a newer worker claims the index
    old.add(result(0))
    with pytest.raises(StateConflict, match="stale"):
        await old.flush()
    # its part is stored (a real outcome), the newer checkpoint is untouched
    assert sorted(await read_results(store, LAYOUT, 0)) == [0]
    assert Checkpoint.from_bytes(store.objects[LAYOUT.checkpoint(0)]).generation == 2
