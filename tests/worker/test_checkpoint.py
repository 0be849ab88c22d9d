"""The checkpoint model and its compare-and-swap ownership in the state store."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import ConfigError, StateConflict
from ingest.state.base import Blob, RunLayout
from ingest.state.records import Checkpoint
from ingest.worker.checkpoint import CheckpointStore
from tests.worker.memstore import MemoryStateStore

LAYOUT = RunLayout("r1")


def test_low_water_mark_moves_over_consecutive_done_ordinals() -> None:
    cp = Checkpoint()
    for o in (2, 3, 5):
        cp.add(o)
    assert cp.low == 0
    assert cp.done == {2, 3, 5}
    cp.add(0)
    cp.add(1)
    assert cp.low == 4
    assert cp.done == {5}
    assert [o for o in range(8) if cp.is_done(o)] == [0, 1, 2, 3, 5]
    cp.add(1)  # idempotent, below the mark
    assert cp.count() == 5
    assert not cp.is_complete(6)
    cp.add(4)
    assert cp.is_complete(6)
    with pytest.raises(ValueError, match="ordinal"):
        cp.add(-1)


@given(st.lists(st.integers(0, 300), max_size=200))
def test_is_done_matches_what_was_added_and_survives_json(ordinals: list[int]) -> None:
    cp = Checkpoint()
    for o in ordinals:
        cp.add(o)
    back = Checkpoint.from_bytes(cp.to_bytes())
    for o in range(320):
        assert cp.is_done(o) == (o in ordinals)
        assert back.is_done(o) == (o in ordinals)
    assert back.low == cp.low
    assert back.done == cp.done


def test_size_stays_small_with_one_straggler() -> None:
    cp = Checkpoint(worker_id="w", generation=3)
    cp.add_all(range(1, 100_000))  # ordinal 0 still in flight (a 1 GiB upload)
    cp.add_all(range(100_500, 150_000))
    data = cp.to_bytes()
    assert len(data) < 150
    back = Checkpoint.from_bytes(data)
    assert back.runs() == [[1, 100_000], [100_500, 150_000]]
    assert (back.worker_id, back.generation) == ("w", 3)
    back.add(0)
    assert back.low == 100_000


def test_merge_takes_the_union() -> None:
    a = Checkpoint()
    a.add_all([0, 1, 7])
    b = Checkpoint()
    b.add_all([0, 1, 2, 3, 9])
    a.merge(b)
    assert a.low == 4
    assert a.done == {7, 9}
    c = Checkpoint()
    c.add_all(range(12))
    a.merge(c)
    assert (a.low, a.done) == (12, set())


@pytest.mark.parametrize(
    "data",
    [b"not json", b'{"v": 99, "low": 0, "done": []}', b'{"v": 1}', b'{"v":1,"low":0,"done":[1]}'],
)
def test_unreadable_checkpoints_are_named(data: bytes) -> None:
    with pytest.raises(ValueError, match="unreadable checkpoint"):
        Checkpoint.from_bytes(data)


async def test_claim_creates_then_saves_by_compare_and_swap() -> None:
    store = MemoryStateStore()
    cps = CheckpointStore(store, LAYOUT, 3, worker_id="first")
    cp = await cps.claim()
    assert (cp.generation, cp.worker_id, cp.count()) == (1, "first", 0)
    cp.add_all([0, 1, 2])
    await cps.save(cp)
    stored = Checkpoint.from_bytes(store.objects[LAYOUT.checkpoint(3)])
    assert (stored.low, stored.generation, stored.worker_id) == (3, 1, "first")
    assert stored.updated_at


async def test_a_restarted_worker_resumes_and_the_zombie_is_stopped() -> None:
    store = MemoryStateStore()
    old = CheckpointStore(store, LAYOUT, 0, worker_id="old")
    cp_old = await old.claim()
    cp_old.add_all(range(10))
    await old.save(cp_old)

    new = CheckpointStore(store, LAYOUT, 0, worker_id="new")
    cp_new = await new.claim()
    assert (cp_new.low, cp_new.generation, cp_new.worker_id) == (10, 2, "new")

    cp_old.add_all(range(10, 20))
    with pytest.raises(StateConflict, match="stale") as err:
        await old.save(cp_old)
    assert "old" in str(err.value)
    # the newer progress was not overwritten, and the new owner goes on writing
    assert Checkpoint.from_bytes(store.objects[LAYOUT.checkpoint(0)]).worker_id == "new"
    cp_new.add(10)
    await new.save(cp_new)


async def test_two_fresh_workers_racing_for_one_index_one_loses() -> None:
    store = MemoryStateStore()
    a = CheckpointStore(store, LAYOUT, 1, worker_id="a")
    b = CheckpointStore(store, LAYOUT, 1, worker_id="b")
    real_get = store.get

    async def get_then_a_claims(path: str) -> Blob | None:
        blob = await real_get(path)  # b sees no checkpoint ...
        store.get = real_get  # type: ignore[method-assign]
        await a.claim()  # ... and a writes one before b does
        return blob

    store.get = get_then_a_claims  # type: ignore[method-assign]
    with pytest.raises(StateConflict, match=r"\(b\) is stale"):
        await b.claim()
    assert Checkpoint.from_bytes(store.objects[LAYOUT.checkpoint(1)]).worker_id == "a"


async def test_save_before_claim_is_a_bug() -> None:
    cps = CheckpointStore(MemoryStateStore(), LAYOUT, 0)
    with pytest.raises(RuntimeError, match="claim"):
        await cps.save(Checkpoint())


async def test_a_corrupt_checkpoint_stops_with_the_way_out() -> None:
    store = MemoryStateStore()
    store.objects[LAYOUT.checkpoint(2)] = b"{garbage"
    with pytest.raises(ConfigError, match=r"checkpoints/00002\.json.*delete that file"):
        await CheckpointStore(store, LAYOUT, 2).claim()
