"""The ledger in the state store: segments + manifest by CAS, on both stores."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.errors import FatalError
from ingest.ledger.entries import Entry
from ingest.ledger.store import Ledger, compaction_range
from ingest.state.base import StateStore
from tests.ledger.helpers import FakeClock, entry, lines


async def view_of(ledger: Ledger, tmp: Path) -> dict[str, Entry]:
    with tempfile.TemporaryDirectory(dir=tmp) as work:
        _, view = await ledger.fetch(Path(work))
        return _check(view.entries())


def _check(entries: Iterator[Entry]) -> dict[str, Entry]:
    out = {}
    keys = []
    for e in entries:
        keys.append(e.sort_key)
        out[e.sort_key] = e
    assert keys == sorted(keys) and len(keys) == len(set(keys))
    return out


async def test_a_run_is_recorded_once(store: StateStore, tmp_path: Path) -> None:
    ledger = Ledger(store, "nightly", page_entries=3)
    es = [entry(f"k{i:02d}") for i in range(10)]
    assert await ledger.add_run("r1", iter(lines(es)))
    assert not await ledger.add_run("r1", iter(lines(es)))  # redone: nothing new
    manifest, _ = await ledger.read()
    assert [s.pages for s in manifest.segments] == [4]
    assert [r.run_id for r in manifest.runs] == ["r1"]
    assert await view_of(ledger, tmp_path) == {e.sort_key: e for e in es}


async def test_the_newest_segment_wins(store: StateStore, tmp_path: Path) -> None:
    ledger = Ledger(store, "nightly", page_entries=2)
    await ledger.add_run("r1", iter(lines([entry("a"), entry("b"), entry("c")])))
    await ledger.add_run("r2", iter(lines([entry("b", "e2", run="r2"), entry("d", run="r2")])))
    view = await view_of(ledger, tmp_path)
    assert {k.split("\0")[1]: (e.etag, e.run_id) for k, e in view.items()} == {
        "a": ("e1", "r1"),
        "b": ("e2", "r2"),
        "c": ("e1", "r1"),
        "d": ("e1", "r2"),
    }


async def test_keys_with_tabs_newlines_and_backslashes(store: StateStore, tmp_path: Path) -> None:
    ledger = Ledger(store, "odd")
    odd = [entry("a\tb"), entry("a\nb"), entry("a\\tb"), entry("é/ü"), entry("a\\")]
    await ledger.add_run("r1", iter(lines(odd)))
    assert await view_of(ledger, tmp_path) == {e.sort_key: e for e in odd}


async def test_concurrent_merges_both_land(store: StateStore, tmp_path: Path) -> None:
    ledger = Ledger(store, "nightly")
    runs = {f"r{i}": [entry(f"k{i}-{j}", run=f"r{i}") for j in range(5)] for i in range(6)}
    done = await asyncio.gather(*(ledger.add_run(r, iter(lines(es))) for r, es in runs.items()))
    assert all(done)
    manifest, _ = await ledger.read()
    assert sorted(r.run_id for r in manifest.runs) == sorted(runs)
    assert len(await view_of(ledger, tmp_path)) == 30


async def test_the_same_run_merged_twice_at_once_is_recorded_once(
    store: StateStore, tmp_path: Path
) -> None:
    ledger = Ledger(store, "nightly")
    es = [entry(f"k{j}") for j in range(5)]
    done = await asyncio.gather(*(ledger.add_run("r1", iter(lines(es))) for _ in range(3)))
    assert sorted(done) == [False, False, True]
    manifest, _ = await ledger.read()
    assert len(manifest.runs) == 1 and len(manifest.segments) == 1
    clock_free = [p async for p in store.list("ledger/nightly/segments/")]
    assert len({p.split("/")[3] for p in clock_free}) == 1  # the losers removed theirs


async def test_compaction_keeps_the_view(store: StateStore, tmp_path: Path) -> None:
    ledger = Ledger(store, "nightly", page_entries=4, max_segments=3)
    expected: dict[str, Entry] = {}
    for r in range(6):
        es = [entry(f"k{(r * 3 + j) % 11:02d}", f"e{r}", run=f"r{r}") for j in range(5)]
        await ledger.add_run(f"r{r}", iter(lines(es)))
        expected.update({e.sort_key: e for e in es})
    before = await view_of(ledger, tmp_path)
    assert before == expected
    assert await ledger.compact(tmp_path)
    manifest, _ = await ledger.read()
    assert len(manifest.segments) == 1  # six of one size: all merged at once
    assert await view_of(ledger, tmp_path) == expected
    es = [entry("k03", "e9", run="r9"), entry("k99", run="r9")]
    await ledger.add_run("r9", iter(lines(es)))
    expected.update({e.sort_key: e for e in es})
    assert not await ledger.compact(tmp_path)  # two segments: few enough
    assert await ledger.compact(tmp_path, everything=True)
    manifest, _ = await ledger.read()
    assert len(manifest.segments) == 1 and manifest.segments[0].entries == len(expected)
    assert await view_of(ledger, tmp_path) == expected


async def test_concurrent_compactions_one_wins(store: StateStore, tmp_path: Path) -> None:
    ledger = Ledger(store, "nightly", page_entries=4, max_segments=2)
    for r in range(5):
        es = [entry(f"k{r}-{j}", run=f"r{r}") for j in range(3)]
        await ledger.add_run(f"r{r}", iter(lines(es)))
    expected = await view_of(ledger, tmp_path)
    works = [tmp_path / "c1", tmp_path / "c2"]
    for w in works:
        w.mkdir()
    await asyncio.gather(*(ledger.compact(w, everything=True) for w in works))
    manifest, _ = await ledger.read()
    assert len(manifest.segments) == 1
    assert await view_of(ledger, tmp_path) == expected


async def test_a_crash_before_the_swap_leaves_an_orphan_that_is_cleaned(
    store: StateStore, tmp_path: Path
) -> None:
    clock = FakeClock()
    ledger = Ledger(store, "nightly", clock=clock)
    await ledger.add_run("r1", iter(lines([entry("a")])))
    orphan = await ledger.write_segment(iter(lines([entry("zzz")])))  # then "crash"
    assert set(await view_of(ledger, tmp_path)) == {"b\0a"}
    assert await ledger.clean() == 0  # it could be a merge in flight
    clock.advance(hours=2)
    assert await ledger.clean() == 1
    assert await store.get(ledger.page_path(orphan.id, 0)) is None
    assert set(await view_of(ledger, tmp_path)) == {"b\0a"}


async def test_replaced_segments_wait_out_the_grace_period(
    store: StateStore, tmp_path: Path
) -> None:
    clock = FakeClock()
    ledger = Ledger(store, "nightly", clock=clock)
    for r in range(3):
        await ledger.add_run(f"r{r}", iter(lines([entry(f"k{r}")])))
    old, _ = await ledger.read()
    clock.advance(hours=5)  # old segment ids, freshly retired: still kept
    await ledger.compact(tmp_path, everything=True)
    assert await ledger.clean() == 0
    assert await store.get(ledger.page_path(old.segments[0].id, 0)) is not None
    clock.advance(hours=2)
    assert await ledger.clean() == 3
    manifest, _ = await ledger.read()
    assert manifest.retired == ()
    assert len(await view_of(ledger, tmp_path)) == 3


def test_compaction_range_is_size_tiered() -> None:
    assert compaction_range([100] * 8, 8) is None
    assert compaction_range([10_000_000] + [100_000] * 8, 8) == (1, 9)
    assert compaction_range([10_000_000, 800_000] + [100_000] * 7, 8) == (1, 9)
    assert compaction_range([1000, 1000] + [10] * 7, 8) == (0, 9)
    assert compaction_range([10**k for k in range(9, 0, -1)], 8) == (7, 9)


async def test_a_missing_page_is_named(store: StateStore, tmp_path: Path) -> None:
    ledger = Ledger(store, "nightly", page_entries=2)
    await ledger.add_run("r1", iter(lines([entry(k) for k in "abcde"])))
    manifest, _ = await ledger.read()
    await store.delete(ledger.page_path(manifest.segments[0].id, 1))
    with pytest.raises(FatalError, match=r"a page of segment .* is missing; rebuild"):
        await ledger.fetch(tmp_path)
