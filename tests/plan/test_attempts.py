"""Two planners of one run id with different listings never mix (issue 13, point 13)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ingest.errors import ExitCode, StateDamaged
from ingest.planning.planner import make_plan
from ingest.settings import load_settings
from ingest.state import RunLayout, StateStore, open_state
from ingest.state.records import read_plan, read_shard
from tests.plan.helpers import items_of, listing


@pytest.fixture
async def folder(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with open_state(f"file://{tmp_path}/state", load_settings()) as store:
        yield store


class _Gated:
    """The store, with run.json's create held until ``gate`` is set; ``shards_done`` is
    set once this planner has written its shards (its first create is run.json)."""

    def __init__(self, store: StateStore, gate: asyncio.Event) -> None:
        self._store = store
        self.gate = gate
        self.shards_done = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def create(self, path: str, data: bytes) -> str:
        if path.endswith("run.json"):
            self.shards_done.set()
            await self.gate.wait()
        return await self._store.create(path, data)


async def test_the_planner_that_creates_run_json_owns_every_shard(folder: StateStore) -> None:
    settings = load_settings(plan={"shards": 3})
    mine = items_of(range(100, 160), prefix="b")
    theirs = items_of(range(200, 260), prefix="a")
    b_gate, a_gate = asyncio.Event(), asyncio.Event()
    b_store, a_store = _Gated(folder, b_gate), _Gated(folder, a_gate)

    async def plan(store: _Gated, items: list[Any]) -> Any:
        return await make_plan(
            listing(items),
            settings=settings,
            source_uri="x",
            store=store,
            run_id="twice",  # type: ignore[arg-type]
        )

    # The interleaving that mixed them: B writes shards, A overwrites them, B's run.json wins.
    b = asyncio.create_task(plan(b_store, mine))
    await b_store.shards_done.wait()
    a = asyncio.create_task(plan(a_store, theirs))
    await a_store.shards_done.wait()
    b_gate.set()
    b_out = await b
    a_gate.set()
    a_out = await a
    assert b_out.status == "planned" and a_out.status == "existing"
    plan = await read_plan(folder, "twice")
    assert plan.attempt == b_out.plan.attempt
    got = [i for n in range(plan.shards) for i in await read_shard(folder, plan, n)]
    assert [i.key for i in got] == [i.key for i in mine]
    # the loser removed its shards: only the winner's attempt is left
    left = [p async for p in folder.list("runs/twice/shards/")]
    assert left == [RunLayout("twice").shard(n, plan.attempt) for n in range(plan.shards)]


async def test_a_shard_rewritten_after_the_plan_is_a_fatal_named_error(
    folder: StateStore,
) -> None:
    out = await make_plan(
        listing(items_of([5] * 20)), settings=load_settings(plan={"shards": 2}),
        source_uri="x", store=folder, run_id="rw",
    )  # fmt: skip
    path = RunLayout("rw").shard(1, out.plan.attempt)
    blob = await folder.get(RunLayout("rw").shard(0, out.plan.attempt))
    assert blob is not None
    await folder.put(path, blob.data)  # another shard's bytes: readable, but not this shard
    with pytest.raises(
        StateDamaged, match=r"shard file .*00001.jsonl.gz does not match run.json"
    ) as info:
        await read_shard(folder, out.plan, 1)
    assert info.value.exit_code is ExitCode.FATAL
