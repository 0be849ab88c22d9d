"""status reads checkpoints concurrently, bounded (issue 13, point 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ingest.planning.planner import make_plan
from ingest.report import shard_statuses
from ingest.settings import load_settings
from ingest.state import StateStore, open_state
from tests.plan.helpers import items_of, listing


class _Counting:
    """The store; checkpoint reads wait until ``width`` are in flight at once."""

    def __init__(self, store: StateStore, width: int) -> None:
        self._store = store
        self.width = width
        self.in_flight = 0
        self.most = 0
        self.full = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get(self, path: str) -> Any:
        if "/checkpoints/" not in path:
            return await self._store.get(path)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight >= self.width:
            self.full.set()
        try:
            await asyncio.wait_for(self.full.wait(), 10)  # one at a time never gets there
            return await self._store.get(path)
        finally:
            self.in_flight -= 1


async def test_checkpoints_are_read_concurrently_and_bounded(tmp_path: Path) -> None:
    async with open_state(f"file://{tmp_path}/state", load_settings()) as store:
        out = await make_plan(
            listing(items_of([5] * 40)), settings=load_settings(plan={"shards": 10}),
            source_uri="x", store=store, run_id="st",
        )  # fmt: skip
        counting = _Counting(store, 4)
        statuses = await shard_statuses(counting, out.plan, concurrency=4)  # type: ignore[arg-type]
    assert counting.most == 4
    assert [s.index for s in statuses] == list(range(10))
    assert all(s.state == "not started" and s.items == 4 for s in statuses)
