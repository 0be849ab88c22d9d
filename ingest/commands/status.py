"""``aion-ingest status`` / ``report``: a run's progress and its report, from the state store
alone, so they serve a local run and a Kubernetes run alike, from any machine that can
read the store, while the run goes on or after it ended."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence

from ingest.commands.pacing import forecaster
from ingest.logs import redact
from ingest.orchestration.local import default_state_uri
from ingest.orchestration.progress import RunProgress, RunTracker
from ingest.planning.forecast import duration
from ingest.report import ShardStatus, build_report
from ingest.settings import Settings
from ingest.state import open_state
from ingest.state.base import RunLayout, StateStore
from ingest.state.claims import stored_backed_claims
from ingest.state.records import RunPlan, read_plan
from ingest.worker.ids import pending_uploads, resolve_pending_ids

# Shards whose results are read at once to check their checkpoints' claims (each read holds
# one shard's outcomes in memory).
CLAIM_READS = 4


async def status_command(
    run_id: str, settings: Settings, *, as_json: bool, sample_seconds: float = 5.0
) -> int:
    """``aion-ingest status RUN_ID``: per-shard progress from the state store alone.

    While shards are in progress, two samples ``sample_seconds`` apart give the rate and
    ETA, computed by the same :class:`RunTracker` as the run's progress lines and metrics.
    """
    state_uri = settings.state or default_state_uri()
    progress: RunProgress | None = None
    async with open_state(state_uri, settings) as store:
        plan = await read_plan(store, run_id)
        tracker = RunTracker(store, plan)
        progress = await tracker.sample()
        if sample_seconds > 0 and any(s.state == "in progress" for s in progress.shards):
            await asyncio.sleep(sample_seconds)
            progress = await tracker.sample()
        statuses = await _backed(store, plan, progress.shards)
        report = await store.get(RunLayout(run_id).report_json)
    done = sum(s.done for s in statuses)
    predicted = forecaster(settings, None)(plan)
    if as_json:
        doc = {
            "run_id": run_id,
            "items": plan.items,
            "done": done,
            "objects_per_second": round(progress.objects_per_second, 3),
            "eta_seconds": None if progress.eta_seconds is None else round(progress.eta_seconds),
            "forecast_seconds": predicted,
            "shards": [dataclasses.asdict(s) | {"state": s.state} for s in statuses],
            "report": json.loads(report.data) if report else None,
        }
        print(json.dumps(doc, indent=1))
        return 0
    print(f"run {run_id} ({plan.source}): {done:,}/{plan.items:,} objects have an outcome")
    print(progress.text())
    if predicted is not None:
        print(_against_forecast(plan.items, predicted, progress.objects_per_second))
    print(f"{'shard':>5}  {'done':>15}  {'%':>6}  {'state':<12} worker        updated")
    for s in statuses:
        pct = 100.0 * s.done / s.items if s.items else 100.0
        print(
            f"{s.index:>5}  {f'{s.done:,}/{s.items:,}':>15}  {pct:>5.1f}%  {s.state:<12} "
            f"{s.worker or '-':<13} {s.updated_at or '-'}"
        )
    for s, claimed in zip(statuses, progress.shards, strict=True):
        if s.done < claimed.done:
            print(
                f"shard {s.index}: its checkpoint claims {claimed.done:,} done, its results "
                f"hold {s.done:,}; 'aion-ingest resume {run_id}' redoes the rest"
            )
    if report:
        print(f"report: {state_uri.rstrip('/')}/{RunLayout(run_id).report_csv}")
    return 0


async def _backed(
    store: StateStore, plan: RunPlan, statuses: Sequence[ShardStatus]
) -> list[ShardStatus]:
    """``statuses`` with each shard's done count cut to the outcomes its results hold, as
    the report counts them (a deleted or damaged part, a checkpoint edited by hand): status
    and the report never disagree. Reads the results of every shard with progress."""
    layout = RunLayout(plan.run_id)
    gate = asyncio.Semaphore(CLAIM_READS)

    async def one(s: ShardStatus) -> ShardStatus:
        if s.done == 0:
            return s
        async with gate:
            backed = await stored_backed_claims(store, layout, s.index)
        return dataclasses.replace(s, done=min(backed.count(), s.items))

    return list(await asyncio.gather(*(one(s) for s in statuses)))


async def report_command(run_id: str, settings: Settings, *, failed_only: bool) -> int:
    """``aion-ingest report RUN_ID``: merge the results into report.json and report.csv.

    Image ids the workers left pending (``worker.batch_results=list``, shards run by
    ``aion-ingest work`` alone) are resolved first, as the run's report step does."""
    state_uri = settings.state or default_state_uri()
    async with open_state(state_uri, settings) as store:
        ids_line = await _resolve_ids(store, run_id, settings)
        # A rebuild keeps the verdict the run ended with (the Job's, not ours to judge).
        earlier = await store.get(RunLayout(run_id).report_json)
        doc = json.loads(earlier.data) if earlier is not None else {}
        report = await build_report(
            store,
            run_id,
            failed_only=failed_only,
            verdict=doc.get("verdict"),
            failed_indexes=doc.get("failed_indexes") or None,
        )
    if ids_line:
        print(ids_line)
    print(redact(report.summary()))
    return 0


async def _resolve_ids(store: StateStore, run_id: str, settings: Settings) -> str | None:
    """Resolve the run's pending image ids; a line for people when there were some."""
    plan = await read_plan(store, run_id)
    if settings.api.key is None:  # reading a report needs no key; resolving ids does
        pending = await pending_uploads(store, run_id, plan.shards)
        if not pending.wanted:
            return None
        return (
            f"image ids: {len(pending.wanted)} pending; set AIONVISION_API_KEY and run "
            f"'aion-ingest report {run_id}' again to resolve them"
        )
    ids = await resolve_pending_ids(store, run_id, plan.shards, settings)
    return ids.summary() if ids.pending else None


def _against_forecast(items: int, predicted: float, measured: float) -> str:
    """The plan's forecast beside the measured rate (objects per second, 0 when unknown)."""
    rate = items / predicted if predicted > 0 else 0.0
    line = f"forecast: {duration(predicted)} for the whole run, {rate * 60:,.0f} objects/min"
    if measured > 0 and rate > 0:
        line += f"; measured {measured * 60:,.0f} objects/min ({100 * measured / rate:.0f}% of it)"
    return line
