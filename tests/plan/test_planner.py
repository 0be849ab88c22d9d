"""The planner end to end on real stores (a folder, moto's S3): shards, run.json, reruns."""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import ConfigError, FatalError, RetryableError
from ingest.items import Item
from ingest.planning.balance import Cost, assign
from ingest.planning.planner import make_plan
from ingest.settings import Settings, load_settings
from ingest.sources.filters import Filter
from ingest.state import RunLayout, StateStore, open_state
from ingest.state.records import RunPlan, decode_shard
from tests.fixtures.s3 import S3Bucket
from tests.plan.helpers import FakeQuota, items_of, listing


def _by_key(items: Iterable[Item]) -> list[Item]:
    return sorted(items, key=lambda i: i.key)


def _settings(**plan: object) -> Settings:
    return load_settings(plan=plan)


async def _shards(store: StateStore, plan: RunPlan) -> list[list[Item]]:
    layout = RunLayout(plan.run_id)
    out = []
    for i in range(plan.shards):
        blob = await store.get(layout.shard(i, plan.attempt))
        assert blob is not None
        assert blob.etag == plan.shard_etags[i]
        out.append(list(decode_shard(blob.data)))
    return out


@pytest.fixture
async def folder(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with open_state(f"file://{tmp_path}/state", load_settings()) as store:
        yield store


async def test_plan_writes_every_item_once_then_run_json(folder: StateStore) -> None:
    items = items_of([i * 1000 for i in range(500)])
    quota = FakeQuota()
    out = await make_plan(
        listing(items),
        settings=_settings(shards=7),
        source_uri="s3://src/photos/",
        store=folder,
        run_id="r1",
        quota_check=quota,
    )
    assert out.status == "planned"
    plan = out.plan
    assert quota.asked == [500]
    assert (plan.items, plan.bytes, plan.shards) == (500, sum(i.size for i in items), 7)
    shards = await _shards(folder, plan)
    assert _by_key(i for shard in shards for i in shard) == items
    assert [len(s) for s in shards] == plan.shard_items
    assert [sum(i.size for i in s) for s in shards] == plan.shard_bytes
    stored = await folder.get(RunLayout("r1").run_json)
    assert stored is not None
    assert json.loads(stored.data)["shards"] == 7
    assert RunPlan.decode(stored.data, "run.json") == plan
    assert plan.quota is not None and plan.quota["can_proceed"] is True


async def test_filters_are_counted_by_reason(folder: StateStore) -> None:
    items = [*items_of([10, 20]), Item("a/b.exe", 5), Item("dir/", 0), Item("c/d.png", 10**9)]
    out = await make_plan(
        listing(items),
        settings=_settings(),
        source_uri="local",
        store=folder,
        item_filter=Filter(max_size=10**6),
        filters_description=Filter(max_size=10**6).describe(),
    )
    assert out.plan.filtered == {"directory_marker": 1, "too_large": 1, "unsupported_format": 1}
    assert (out.plan.items, out.plan.listed) == (2, 5)
    assert out.plan.filters["max_size"] == 10**6


async def test_quota_refusal_stops_before_anything_is_written(folder: StateStore) -> None:
    with pytest.raises(FatalError, match="Only 10 uploads left this month") as err:
        await make_plan(
            listing(items_of([1] * 50)),
            settings=_settings(),
            source_uri="x",
            store=folder,
            quota_check=FakeQuota(available=10),
        )
    assert err.value.exit_code == 3
    assert [p async for p in folder.list("runs/")] == []


async def test_ignore_quota_plans_and_records_the_refusal(folder: StateStore) -> None:
    out = await make_plan(
        listing(items_of([1] * 50)),
        settings=_settings(ignore_quota=True),
        source_uri="x",
        store=folder,
        quota_check=FakeQuota(available=10),
    )
    assert out.plan.quota is not None and out.plan.quota["can_proceed"] is False


async def _never() -> AsyncIterator[Item]:
    raise AssertionError("an existing plan must not be listed again")
    yield  # pragma: no cover


async def test_an_existing_run_is_returned_unchanged(folder: StateStore) -> None:
    first = await make_plan(
        listing(items_of([5] * 20)), settings=_settings(), source_uri="x", store=folder, run_id="r"
    )
    before = {p: await folder.get(p) async for p in folder.list("runs/r/")}
    again = await make_plan(
        _never(), settings=_settings(), source_uri="x", store=folder, run_id="r"
    )
    assert again.status == "existing"
    assert again.plan == first.plan
    assert {p: await folder.get(p) async for p in folder.list("runs/r/")} == before


class _FailingStore:
    """A real store that breaks after ``puts`` writes: a planner killed half-way."""

    def __init__(self, store: StateStore, puts: int) -> None:
        self._store = store
        self._left = puts
        self.uri = store.uri
        self.get = store.get
        self.list = store.list
        self.create = store.create
        self.delete = store.delete

    async def put(self, path: str, data: bytes) -> str:
        if self._left == 0:
            raise RetryableError("state store went away")
        self._left -= 1
        return await self._store.put(path, data)


async def test_a_half_written_plan_is_redone_and_completed(folder: StateStore) -> None:
    items = items_of(range(0, 3000, 3))
    layout = RunLayout("half")
    # An earlier attempt with more shards died after 3 of them, and left one junk shard.
    with pytest.raises(RetryableError):
        await make_plan(
            listing(items),
            settings=_settings(shards=9),
            source_uri="x",
            store=_FailingStore(folder, 3),  # type: ignore[arg-type]
            run_id="half",
        )
    await folder.put(layout.shard(7), b"junk")
    assert await folder.get(layout.run_json) is None  # never used half-written
    out = await make_plan(
        listing(items), settings=_settings(shards=5), source_uri="x", store=folder, run_id="half"
    )
    assert out.status == "completed"
    assert [p async for p in folder.list(f"{layout.root}/shards/")] == [
        layout.shard(i, out.plan.attempt) for i in range(5)
    ]
    assert _by_key(i for s in await _shards(folder, out.plan) for i in s) == items


async def test_dry_run_writes_nothing(folder: StateStore) -> None:
    out = await make_plan(
        listing(items_of([7] * 30)),
        settings=_settings(shards=3),
        source_uri="x",
        store=folder,
        dry_run=True,
    )
    assert out.status == "dry_run"
    assert out.plan.shard_items == [10, 10, 10]
    assert [p async for p in folder.list("")] == []


async def test_a_limit_stops_an_endless_listing_and_says_so(folder: StateStore) -> None:
    """``plan --dry-run --limit N``: N items read, the listing closed, the quota asked for N."""
    pulled: list[Item] = []
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[Item]:
        try:
            for i in itertools.count():
                item = Item(key=f"k/{i:06d}.jpg", size=100 + i, etag=f"e{i}")
                pulled.append(item)
                yield item
        finally:
            closed.set()

    quota = FakeQuota()
    out = await make_plan(
        endless(),
        settings=_settings(shards=2),
        source_uri="s3://src/",
        store=folder,
        quota_check=quota,
        dry_run=True,
        limit=5,
    )
    assert closed.is_set()
    assert (out.status, out.cut_short_at) == ("dry_run", 5)
    assert (out.plan.listed, out.plan.items, sum(out.plan.shard_items)) == (5, 5, 5)
    assert out.plan.bytes == sum(i.size for i in pulled[:5])
    assert quota.asked == [5]
    assert [p async for p in folder.list("")] == []


async def test_a_limit_the_listing_never_reaches_is_not_a_cut(folder: StateStore) -> None:
    out = await make_plan(
        listing(items_of([7] * 5)),
        settings=_settings(),
        source_uri="x",
        store=folder,
        dry_run=True,
        limit=5,
    )
    assert (out.cut_short_at, out.plan.listed) == (None, 5)


@pytest.mark.parametrize(
    ("limit", "dry_run", "message"), [(5, False, "add --dry-run"), (0, True, "at least 1")]
)
async def test_a_limit_needs_a_dry_run(
    folder: StateStore, limit: int, dry_run: bool, message: str
) -> None:
    """A plan of the first N objects must never be run as if it were the whole source."""
    with pytest.raises(ConfigError, match=message):
        await make_plan(
            listing(items_of([7] * 9)),
            settings=_settings(),
            source_uri="x",
            store=folder,
            dry_run=dry_run,
            limit=limit,
        )
    assert [p async for p in folder.list("")] == []


@pytest.mark.parametrize("bad", ["Run_1", "-r", "r-", "a" * 41, "r.1", "é"])
async def test_a_bad_run_id_is_refused(folder: StateStore, bad: str) -> None:
    with pytest.raises(ConfigError, match=r"run id .* is not usable"):
        await make_plan(listing([]), settings=_settings(), source_uri="x", store=folder, run_id=bad)


async def test_new_run_ids_are_sortable_and_unique(folder: StateStore) -> None:
    ids = [
        (await make_plan(listing([]), settings=_settings(), source_uri="x", store=folder)).plan
        for _ in range(5)
    ]
    assert len({p.run_id for p in ids}) == 5
    assert all(p.shards == 0 for p in ids)


async def test_planning_onto_s3(s3_bucket: S3Bucket) -> None:
    settings = load_settings(
        plan={"max_items_per_shard": 40},
        store={"endpoint_url": s3_bucket.endpoint_url, "region": "us-east-1"},
    )
    items = items_of([100] * 100)
    async with open_state(s3_bucket.uri("state"), settings) as store:
        out = await make_plan(
            listing(items), settings=settings, source_uri="s3://src/", store=store, run_id="s3"
        )
        assert out.plan.shards == 3  # 100 files at <= 40 per shard
        assert max(out.plan.shard_items) <= 40
        assert _by_key(i for s in await _shards(store, out.plan) for i in s) == items
    keys = [
        o["Key"]
        for o in s3_bucket.server.client().list_objects_v2(Bucket=s3_bucket.name)["Contents"]
    ]
    assert keys[-1] == f"state/runs/s3/shards/{out.plan.attempt}/00002.jsonl.gz"
    assert "state/runs/s3/run.json" in keys


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(0, 50_000_000), max_size=120),
    shards=st.one_of(st.none(), st.integers(1, 12)),
)
def test_same_listing_same_shards_each_item_once(sizes: list[int], shards: int | None) -> None:
    items = items_of(sizes)
    cfg = load_settings(plan={"shards": shards, "max_bytes_per_shard": 200_000_000})

    async def plan_twice() -> tuple[list[list[Item]], RunPlan, RunPlan]:
        with tempfile.TemporaryDirectory() as tmp:
            async with open_state(tmp, cfg) as store:
                one = await make_plan(listing(items), settings=cfg, source_uri="x", store=store)
                two = await make_plan(listing(items), settings=cfg, source_uri="x", store=store)
                return await _shards(store, one.plan), one.plan, two.plan

    got, one, two = asyncio.run(plan_twice())
    assert one.run_id != two.run_id
    assert one.shard_etags == two.shard_etags  # byte-identical shards
    flat = [i for shard in got for i in shard]
    assert _by_key(flat) == items  # every item exactly once
    # The streaming planner cuts exactly as the in-memory reference (balance.assign),
    # whose bound test_balance.py checks.
    expected = assign(sizes, shards, Cost.from_settings(cfg.plan))
    assert [j for j, shard in enumerate(got) for _ in shard] == sorted(expected)
    where = {i.key: j for j, shard in enumerate(got) for i in shard}
    assert [where[i.key] for i in items] == expected
