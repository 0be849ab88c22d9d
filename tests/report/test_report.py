"""The completion report: every planned item exactly once, whatever the results hold."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ingest.items import ItemResult, Outcome
from ingest.planning.planner import make_plan
from ingest.report import NOT_PROCESSED, ReportInvariantError, build_report, failed_items
from ingest.settings import load_settings
from ingest.state import RunLayout, StateStore, open_state
from ingest.state.records import RunPlan, decode_shard, encode_part
from tests.plan.helpers import items_of, listing


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with open_state(f"file://{tmp_path}/state", load_settings()) as s:
        yield s


async def _plan(store: StateStore, n: int = 30, shards: int = 3) -> RunPlan:
    out = await make_plan(
        listing(items_of([100 + i for i in range(n)])),
        settings=load_settings(plan={"shards": shards}),
        source_uri="s3://src/",
        store=store,
        run_id="r1",
    )
    return out.plan


async def _write_results(
    store: StateStore, plan: RunPlan, index: int, part: int, results: list[ItemResult]
) -> None:
    await store.create(RunLayout(plan.run_id).results_part(index, part), encode_part(results))


async def _shard(store: StateStore, plan: RunPlan, index: int) -> list[tuple[str, int]]:
    blob = await store.get(RunLayout(plan.run_id).shard(index, plan.attempt))
    assert blob is not None
    return [(i.key, i.size) for i in decode_shard(blob.data)]


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


async def test_every_planned_item_once_with_latest_outcome(store: StateStore) -> None:
    plan = await _plan(store)
    # Shard 0 finished; its ordinal 0 was re-sent after a crash (two parts): the last wins.
    shard0 = await _shard(store, plan, 0)
    first = [ItemResult(0, shard0[0][0], shard0[0][1], Outcome.FAILED, reason="timeout")]
    await _write_results(store, plan, 0, 0, first)
    rest = [
        ItemResult(o, k, s, Outcome.UPLOADED, image_id=f"id-{o}", attempts=1)
        for o, (k, s) in enumerate(shard0)
    ]
    await _write_results(store, plan, 0, 1, rest)
    # Shard 1: a duplicate and a rejected file, the rest never processed; shard 2: nothing.
    shard1 = await _shard(store, plan, 1)
    await _write_results(
        store,
        plan,
        1,
        0,
        [
            ItemResult(0, shard1[0][0], shard1[0][1], Outcome.SKIPPED_DUPLICATE, image_id="x"),
            ItemResult(
                1, shard1[1][0], shard1[1][1], Outcome.FAILED, "", "too big", 413, 1, "too_large"
            ),
        ],
    )
    report = await build_report(store, "r1", failed_only=True)

    layout = RunLayout("r1")
    csv_blob = await store.get(layout.report_csv)
    assert csv_blob is not None
    rows = _rows(csv_blob.data)
    assert len(rows) == plan.items == 30
    assert len({(r["shard"], r["ordinal"]) for r in rows}) == 30
    assert {r["key"] for r in rows} == {
        k for i in range(3) for k, _ in await _shard(store, plan, i)
    }
    row0 = next(r for r in rows if r["shard"] == "0" and r["ordinal"] == "0")
    assert (row0["outcome"], row0["image_id"]) == ("uploaded", "id-0")
    rejected = next(r for r in rows if r["shard"] == "1" and r["ordinal"] == "1")
    assert (rejected["code"], rejected["reason"], rejected["http_status"]) == (
        "too_large",
        "too big",
        "413",
    )

    n0, n1, n2 = plan.shard_items
    assert report.by_outcome["uploaded"] == n0
    assert report.by_outcome["skipped_duplicate"] == 1
    assert report.by_outcome["failed"] == 1 + (n1 - 2) + n2
    assert report.failed_by_reason == {"too_large": 1, NOT_PROCESSED: (n1 - 2) + n2}  # codes
    assert report.complete_indexes == [0]
    assert report.failed_indexes == [1, 2]

    doc = await store.get(layout.report_json)
    assert doc is not None
    assert json.loads(doc.data)["by_outcome"]["uploaded"] == n0

    failed_blob = await store.get(f"{layout.root}/failed.csv")
    assert failed_blob is not None
    failed_rows = _rows(failed_blob.data)
    assert len(failed_rows) == report.failed
    assert {r["outcome"] for r in failed_rows} == {"failed"}
    assert next(r for r in failed_rows if r["reason"] == "too big")["http_status"] == "413"


async def test_failed_items_are_what_a_retry_plans(store: StateStore) -> None:
    plan = await _plan(store, n=6, shards=1)
    shard = await _shard(store, plan, 0)
    await _write_results(
        store,
        plan,
        0,
        0,
        [ItemResult(o, k, s, Outcome.UPLOADED) for o, (k, s) in enumerate(shard[:4])]
        + [ItemResult(4, shard[4][0], shard[4][1], Outcome.FAILED, reason="gone")],
    )
    original, items = await failed_items(store, "r1")
    assert original.source == "s3://src/"
    assert [i.key for i in items] == [shard[4][0], shard[5][0]]


async def test_outcome_for_an_unplanned_ordinal_is_an_error(store: StateStore) -> None:
    plan = await _plan(store, n=4, shards=1)
    await _write_results(store, plan, 0, 0, [ItemResult(9, "k/x.jpg", 1, Outcome.UPLOADED)])
    with pytest.raises(ReportInvariantError, match="ordinals \\[9\\]"):
        await build_report(store, "r1")


async def test_outcome_for_another_key_is_an_error(store: StateStore) -> None:
    plan = await _plan(store, n=4, shards=1)
    await _write_results(store, plan, 0, 0, [ItemResult(0, "other.jpg", 1, Outcome.UPLOADED)])
    with pytest.raises(ReportInvariantError, match=r"other\.jpg"):
        await build_report(store, "r1")


async def test_unknown_run_names_the_fix(store: StateStore) -> None:
    from ingest.errors import ConfigError

    with pytest.raises(ConfigError, match="check the run id and --state"):
        await build_report(store, "nope")
