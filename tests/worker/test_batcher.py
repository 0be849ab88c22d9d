"""Stream-batch groups: full when files wait, bounded latency when they trickle in."""

from __future__ import annotations

import asyncio

import pytest

from ingest.items import Item
from ingest.settings import WorkerSettings
from ingest.worker.batcher import Batcher, Pending
from ingest.worker.naming import upload_fields
from tests.worker.fakeclock import FakeClock

WORKER = WorkerSettings()


def pending(o: int, size: int = 10, key: str | None = None, tags: tuple[str, ...] = ()) -> Pending:
    item = Item(key=key or f"dir/{o}.jpg", size=size, tags=tags)
    return Pending(o, item, upload_fields(item, WORKER, "ns"))


def ordinals(batch: list[Pending] | None) -> list[int]:
    assert batch is not None
    return [p.ordinal for p in batch]


async def test_full_batches_while_files_wait_and_leftovers_at_the_end() -> None:
    b = Batcher(max_files=20, max_bytes=10**6, queue_size=100, clock=FakeClock())
    for o in range(45):
        await b.put(pending(o))
    await b.close()
    sizes = []
    while (batch := await b.next_batch()) is not None:
        sizes.append(len(batch))
    assert sizes == [20, 20, 5]
    assert (b.batches_sent, b.files_sent) == (3, 45)
    assert await b.next_batch() is None


async def test_the_byte_cap_and_duplicate_names_split_batches() -> None:
    b = Batcher(max_files=50, max_bytes=35, queue_size=100, clock=FakeClock())
    for o in range(7):
        await b.put(pending(o, size=10))
    await b.put(pending(7, size=10, key="other/0.jpg"))  # same filename as ordinal 0
    await b.put(pending(8, size=10, key="again/7.jpg"))
    await b.close()
    got = []
    while (batch := await b.next_batch()) is not None:
        got.append(ordinals(batch))
        assert sum(p.item.size for p in batch) <= 35
        assert len({p.fields.filename for p in batch}) == len(batch)
    assert sorted(o for g in got for o in g) == list(range(9))
    assert got[0] == [0, 1, 2]
    with pytest.raises(ValueError, match="too big"):
        await b.put(pending(9, size=36))


async def test_files_share_a_request_only_with_the_same_tags() -> None:
    b = Batcher(max_files=3, max_bytes=10**6, queue_size=100, clock=FakeClock())
    for o in range(6):
        await b.put(pending(o, tags=("a",) if o % 2 else ("b",)))
    await b.close()
    batches = [ordinals(await b.next_batch()), ordinals(await b.next_batch())]
    assert sorted(batches) == [[0, 2, 4], [1, 3, 5]]
    for batch in batches:
        assert len({o % 2 for o in batch}) == 1


async def test_a_ready_uploader_lingers_briefly_for_more_files() -> None:
    clock = FakeClock()
    b = Batcher(max_files=10, max_bytes=10**6, linger=0.05, queue_size=100, clock=clock)

    async def trickle() -> None:
        for o in range(30):
            await b.put(pending(o))
            await clock.sleep(0.02)  # one item every 20 ms

    producer = asyncio.create_task(trickle())
    t0 = clock.monotonic()
    first = await b.next_batch()
    # items kept coming within the linger: the batch filled up
    assert ordinals(first) == list(range(10))
    assert clock.monotonic() - t0 == pytest.approx(0.18)
    await producer
    await clock.sleep(1.0)

    async def slow() -> None:
        await b.put(pending(100))
        await clock.sleep(1.0)  # the next one comes much later than the linger
        await b.put(pending(101))

    producer = asyncio.create_task(slow())
    rest = ordinals(await b.next_batch()) + ordinals(await b.next_batch())
    assert rest == list(range(10, 30))
    t1 = clock.monotonic()
    assert ordinals(await b.next_batch()) == [100]
    assert clock.monotonic() - t1 == pytest.approx(0.05)  # sent after the linger, alone
    assert ordinals(await b.next_batch()) == [101]
    await producer


async def test_an_idle_uploader_waits_for_the_first_item_without_spinning() -> None:
    clock = FakeClock()
    b = Batcher(max_files=5, max_bytes=10**6, linger=0.05, clock=clock)
    consumer = asyncio.create_task(b.next_batch())
    await clock.sleep(60.0)
    assert not consumer.done()
    await b.put(pending(0))
    await b.close()
    assert ordinals(await consumer) == [0]
    assert await b.next_batch() is None


async def test_a_full_inbox_holds_the_producer_back() -> None:
    clock = FakeClock()
    b = Batcher(max_files=2, max_bytes=10**6, queue_size=3, clock=clock)
    for o in range(3):
        await b.put(pending(o))
    blocked = asyncio.create_task(b.put(pending(3)))
    await clock.sleep(1.0)
    assert not blocked.done()
    assert b.waiting == 3
    assert ordinals(await b.next_batch()) == [0, 1]
    await blocked
    await b.close()
    assert ordinals(await b.next_batch()) == [2, 3]


async def test_many_uploaders_get_every_item_exactly_once() -> None:
    clock = FakeClock()
    b = Batcher(max_files=7, max_bytes=10**6, linger=0.01, queue_size=16, clock=clock)
    seen: list[int] = []

    async def uploader() -> None:
        while (batch := await b.next_batch()) is not None:
            seen.extend(ordinals(batch))
            await clock.sleep(0.03)

    async def producer() -> None:
        for o in range(500):
            await b.put(pending(o, key=f"d{o}/same.jpg" if o % 3 else None))
        await b.close()

    uploaders = [asyncio.create_task(uploader()) for _ in range(4)]
    await producer()
    # the end marker is seen by one uploader; the others stop on their next call
    await asyncio.gather(*uploaders)
    assert sorted(seen) == list(range(500))
