"""A run's outcomes into the ledger: what is recorded, exactly once, across crashes."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sys
import tempfile
from pathlib import Path

from ingest.items import Item, ItemResult, Outcome
from ingest.ledger.entries import Entry
from ingest.ledger.merge import finish_pending, marker_path, merge_run, pending_path, register_run
from ingest.ledger.store import Ledger
from ingest.planning.planner import make_plan
from ingest.settings import load_settings
from ingest.state import RunLayout, StateStore, open_state
from ingest.state.records import RunPlan, decode_shard, encode_part
from tests.ledger.helpers import FakeClock
from tests.plan.helpers import listing


async def plan_run(store: StateStore, run_id: str, items: list[Item], shards: int = 2) -> RunPlan:
    out = await make_plan(
        listing(items),
        settings=load_settings(plan={"shards": shards}),
        source_uri="s3://src/",
        store=store,
        run_id=run_id,
    )
    return out.plan


async def finish_run(
    store: StateStore, plan: RunPlan, outcome_of: dict[str, Outcome], part: int = 0
) -> None:
    """Write one results part per shard: each item's outcome (image id from key+etag)."""
    layout = RunLayout(plan.run_id)
    for index in range(plan.shards):
        blob = await store.get(layout.shard(index, plan.attempt))
        assert blob is not None
        results = [
            ItemResult(
                o,
                item.key,
                item.size,
                outcome_of.get(item.key, Outcome.UPLOADED),
                image_id=f"img-{item.key}-{item.etag}",
            )
            for o, item in enumerate(decode_shard(blob.data))
        ]
        await store.create(layout.results_part(index, part), encode_part(results))


async def ledger_entries(store: StateStore, name: str) -> dict[str, Entry]:
    with tempfile.TemporaryDirectory() as tmp:
        _, view = await Ledger(store, name).fetch(Path(tmp))
        return {e.key: e for e in view.entries()}


def items(n: int, etag: str = "e1", bucket: str = "src") -> list[Item]:
    return [Item(f"p/{i:03d}.jpg", 100 + i, etag, bucket=bucket, version_id="v1") for i in range(n)]


async def test_uploaded_and_duplicates_are_recorded_failed_are_not(
    store: StateStore, tmp_path: Path
) -> None:
    plan = await plan_run(store, "r1", items(10))
    await register_run(store, "nightly", "r1")
    await finish_run(
        store,
        plan,
        {"p/003.jpg": Outcome.FAILED, "p/004.jpg": Outcome.SKIPPED_DUPLICATE},
    )
    result = await merge_run(store, "nightly", "r1", tmp_path)
    assert (result.recorded, result.already) == (9, False)
    got = await ledger_entries(store, "nightly")
    assert sorted(got) == [f"p/{i:03d}.jpg" for i in range(10) if i != 3]
    e = got["p/004.jpg"]
    assert (e.bucket, e.size, e.etag, e.version_id, e.image_id, e.run_id) == (
        "src",
        104,
        "e1",
        "v1",
        "img-p/004.jpg-e1",
        "r1",
    )
    assert await store.get(marker_path("r1")) is not None
    assert await store.get(pending_path("nightly", "r1")) is None
    again = await merge_run(store, "nightly", "r1", tmp_path)
    assert (again.recorded, again.already) == (9, True)
    manifest, _ = await Ledger(store, "nightly").read()
    assert [r.run_id for r in manifest.runs] == ["r1"] and len(manifest.segments) == 1


async def test_a_crash_after_the_swap_is_finished_by_the_next_command(
    store: StateStore, tmp_path: Path
) -> None:
    plan = await plan_run(store, "r1", items(5))
    await register_run(store, "nightly", "r1")
    await finish_run(store, plan, {})
    await merge_run(store, "nightly", "r1", tmp_path)
    # As if the merge died after the manifest swap, before the marker:
    await store.delete(marker_path("r1"))
    await register_run(store, "nightly", "r1")
    done = await finish_pending(store, "nightly", tmp_path)
    assert [(d.run_id, d.recorded, d.already) for d in done] == [("r1", 5, True)]
    assert await store.get(marker_path("r1")) is not None
    assert await finish_pending(store, "nightly", tmp_path) == []
    manifest, _ = await Ledger(store, "nightly").read()
    assert len(manifest.runs) == 1 and manifest.segments[0].entries == 5


async def test_a_run_whose_coordinator_died_is_merged_before_the_next(
    store: StateStore, tmp_path: Path
) -> None:
    plan = await plan_run(store, "r1", items(6))
    await register_run(store, "nightly", "r1")
    await finish_run(store, plan, {"p/005.jpg": Outcome.FAILED})
    done = await finish_pending(store, "nightly", tmp_path)
    assert [(d.run_id, d.recorded) for d in done] == [("r1", 5)]
    assert len(await ledger_entries(store, "nightly")) == 5


async def test_a_later_run_records_the_new_etag(store: StateStore, tmp_path: Path) -> None:
    await finish_run(store, await plan_run(store, "r1", items(4)), {})
    await merge_run(store, "nightly", "r1", tmp_path)
    changed = [Item("p/001.jpg", 555, "e2", bucket="src"), Item("p/009.jpg", 9, "e1", bucket="src")]
    await finish_run(store, await plan_run(store, "r2", changed, shards=1), {})
    await merge_run(store, "nightly", "r2", tmp_path)
    got = await ledger_entries(store, "nightly")
    assert len(got) == 5
    assert (got["p/001.jpg"].etag, got["p/001.jpg"].size, got["p/001.jpg"].run_id) == (
        "e2",
        555,
        "r2",
    )
    assert got["p/000.jpg"].run_id == "r1"


async def test_two_merges_of_one_run_at_once_record_it_once(
    store: StateStore, tmp_path: Path
) -> None:
    await finish_run(store, await plan_run(store, "r1", items(8)), {})
    works = [tmp_path / "a", tmp_path / "b"]
    for w in works:
        w.mkdir()
    results = await asyncio.gather(*(merge_run(store, "nightly", "r1", w) for w in works))
    assert sorted(r.already for r in results) == [False, True]
    assert {r.recorded for r in results} == {8}
    manifest, _ = await Ledger(store, "nightly").read()
    assert len(manifest.runs) == 1 and [s.entries for s in manifest.segments] == [8]


async def test_sigkill_before_the_swap_loses_nothing(tmp_path: Path) -> None:
    """A real process killed mid-merge: the next merge records every object once, and the
    killed one's segment is an orphan, cleaned after the grace period."""
    state = tmp_path / "state"
    async with open_state(f"file://{state}", load_settings()) as store:
        await finish_run(store, await plan_run(store, "r1", items(20)), {})
        await register_run(store, "nightly", "r1")
    work = tmp_path / "work"
    work.mkdir()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ledger.merge_child",
        f"file://{state}",
        "nightly",
        "r1",
        str(work),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), 60) == b"SWAP\n"
    child.send_signal(signal.SIGKILL)
    assert await child.wait() == -signal.SIGKILL

    async with open_state(f"file://{state}", load_settings()) as store:
        orphans = {p.split("/")[3] async for p in store.list("ledger/nightly/segments/")}
        assert len(orphans) == 1
        assert await ledger_entries(store, "nightly") == {}
        done = await finish_pending(store, "nightly", work)
        assert [(d.recorded, d.already) for d in done] == [(20, False)]
        assert len(await ledger_entries(store, "nightly")) == 20
        clock = FakeClock()
        clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        assert await Ledger(store, "nightly", clock=clock).clean() == 1
        left = {p.split("/")[3] async for p in store.list("ledger/nightly/segments/")}
        assert len(left) == 1 and left.isdisjoint(orphans)


async def test_a_resumed_run_is_merged_again(store: StateStore, tmp_path: Path) -> None:
    plan = await plan_run(store, "r1", items(6))
    await finish_run(store, plan, {"p/002.jpg": Outcome.FAILED})
    await merge_run(store, "nightly", "r1", tmp_path)
    assert "p/002.jpg" not in await ledger_entries(store, "nightly")
    await finish_run(store, plan, {}, part=1)  # resumed: the failed one went through
    assert (await merge_run(store, "nightly", "r1", tmp_path)).already  # not without again
    result = await merge_run(store, "nightly", "r1", tmp_path, again=True)
    assert (result.recorded, result.already) == (6, False)
    assert len(await ledger_entries(store, "nightly")) == 6
    manifest, _ = await Ledger(store, "nightly").read()
    assert [r.run_id for r in manifest.runs] == ["r1", "r1+1"]


async def test_a_pending_run_that_was_never_planned_is_forgotten(
    store: StateStore, tmp_path: Path
) -> None:
    await register_run(store, "nightly", "r9")
    assert await finish_pending(store, "nightly", tmp_path) == []
    assert await store.get(pending_path("nightly", "r9")) is None
