"""``aion-ingest runs``: the runs in a state store, newest first, with their status.

The status comes from the store alone: the report's verdict once the run was reported,
else how many objects have an outcome so far (a run that is going on, or was interrupted
and waits for ``aion-ingest resume``).
"""

from __future__ import annotations

import json

from ingest.orchestration.local import default_state_uri
from ingest.report import shard_statuses
from ingest.settings import Settings
from ingest.state import StateStore, open_state
from ingest.state.base import RunLayout
from ingest.state.records import RunPlan, read_plan


async def _status(store: StateStore, plan: RunPlan) -> str:
    report = await store.get(RunLayout(plan.run_id).report_json)
    if report is not None:
        doc = json.loads(report.data)
        counts = doc.get("by_outcome") or {}
        failed = counts.get("failed", 0)
        return f"{doc.get('verdict') or 'reported'} ({failed:,} failed)"
    done = sum(s.done for s in await shard_statuses(store, plan))
    return f"not reported: {done:,}/{plan.items:,} done (running, or resume it)"


async def runs_command(settings: Settings) -> int:
    """Print one line per run: id, planned time, objects, status, source."""
    state_uri = settings.state or default_state_uri()
    async with open_state(state_uri, settings) as store:
        run_ids = [
            path.split("/")[1]
            async for path in store.list("runs/")
            if path.count("/") == 2 and path.endswith("/run.json")
        ]
        plans = [await read_plan(store, run_id) for run_id in run_ids]
        plans.sort(key=lambda p: (p.created_at, p.run_id), reverse=True)
        if not plans:
            print(f"no runs in {state_uri}; start one with: aion-ingest run SOURCE")
            return 0
        for plan in plans:
            status = await _status(store, plan)
            line = f"{plan.run_id}  {plan.created_at}  {plan.items:>9,} objects  {status}"
            print(f"{line}  {plan.source}")
    return 0
