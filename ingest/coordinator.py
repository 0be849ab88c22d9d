"""The coordinator: plan → launch the worker Job → watch it → report → exit code.

It runs as the chart's coordinator Job (or on a laptop with a kubeconfig). Restarting it
is safe at every step: the plan is written once (the planner reads ``run.json`` back when
it exists), the worker Job is found by its run-id label before anything is created, and
the watch simply starts again. The run id defaults to the coordinator's own Job name,
which stays the same across pod restarts and differs for each CronJob run.

The plan, report and progress steps are passed in (``ingest.plan``, ``ingest.report``
and the state store own them), so this module only sequences them and owns no I/O of
its own besides the launcher's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from ingest.errors import ConfigError
from ingest.launch.jobspec import CoordinatorPodInfo, Manifest, progress_line
from ingest.launch.semantics import Verdict, format_indexes
from ingest.settings import Settings

log = logging.getLogger(__name__)

PlanStep = Callable[[str], Awaitable[int]]
"""Plan run ``run_id`` (or read back its finished plan); the number of shards."""
ReportStep = Callable[[str, Verdict], Awaitable[str | None]]
"""Merge the run's results given the Job's verdict; where the report is (URI), if any."""
ProgressStep = Callable[[str], Awaitable[str]]
"""One line on the run's progress, read from the state store."""
Observer = Callable[[Manifest], None]
RUN_ID_MAX = 40  # the planner's limit on run ids (ingest/planning/runid.py)


class Launcher(Protocol):
    """What the coordinator needs from a launcher (Kubernetes; the local one may follow)."""

    async def pod_info(self, env: dict[str, str] | None = None) -> CoordinatorPodInfo: ...

    async def find(self, namespace: str, run_id: str) -> Manifest | None: ...

    async def create(
        self, info: CoordinatorPodInfo, *, run_id: str, state_uri: str, shards: int
    ) -> Manifest: ...

    async def wait(self, job: Manifest, on_change: Observer | None = None) -> Verdict: ...


async def coordinate(
    settings: Settings,
    *,
    plan: PlanStep,
    report: ReportStep,
    run_id: str | None = None,
    progress: ProgressStep | None = None,
    launcher: Launcher | None = None,
    env: dict[str, str] | None = None,
    observer: Observer | None = None,
) -> int:
    """Run one ingestion to its end on Kubernetes; the process exit code (0, 1 or 3).

    ``observer`` sees every new state of the worker Job (tests drive lifecycles with it).
    """
    if not settings.state:
        raise ConfigError("no state store: set INGEST_STATE (s3://bucket/prefix or file:///path)")
    if launcher is None:
        from ingest.launch.kubernetes import Clients, KubernetesLauncher

        launcher = KubernetesLauncher(Clients.connect(settings.kubernetes), settings.kubernetes)
    info = await launcher.pod_info(env)
    run_id = run_id or (run_id_for_job(info.owner.name) if info.owner else None)
    if not run_id:
        raise ConfigError(
            "no run id: pass --run-id, or run the coordinator as a Kubernetes Job "
            "(the chart does), whose name becomes the run id"
        )
    namespace = info.namespace or "default"
    job = await launcher.find(namespace, run_id)
    if job is not None:
        log.info("run %s: found its worker Job %s; watching it", run_id, job["metadata"]["name"])
    else:
        shards = await plan(run_id)
        job = await launcher.create(info, run_id=run_id, state_uri=settings.state, shards=shards)

    def on_change(state: Manifest) -> None:
        log.info("run %s: %s", run_id, progress_line(state))
        if observer is not None:
            observer(state)

    ticker = None
    if progress is not None:
        ticker = asyncio.create_task(
            _log_progress(run_id, progress, settings.kubernetes.progress_seconds),
            name=f"progress:{run_id}",
        )
    try:
        verdict = await launcher.wait(job, on_change)
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
    log.info("run %s: worker Job ended: %s", run_id, verdict.describe())
    where = await report(run_id, verdict)
    if verdict.failed:
        log.warning(
            "run %s: indexes %s failed; rerun to retry them from their checkpoints",
            run_id,
            format_indexes(verdict.failed),
        )
    if where:
        log.info("run %s: report at %s", run_id, where)
    return int(verdict.exit_code)


def run_id_for_job(name: str) -> str:
    """The run id of a coordinator Job named ``name``: the name itself when it is a short
    DNS label (run ids name Kubernetes objects, at most 40 characters), else its first
    29 characters and a hash, so a long release or CronJob name still gives a stable id."""
    if len(name) <= RUN_ID_MAX and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    head = re.sub(r"[^a-z0-9]+", "-", name.lower())[: RUN_ID_MAX - 11].strip("-")
    return f"{head}-{digest}" if head else digest


async def _log_progress(run_id: str, progress: ProgressStep, every: float) -> None:
    """Log the state store's view of the run every ``every`` seconds until cancelled."""
    while True:
        await asyncio.sleep(every)
        try:
            log.info("run %s: %s", run_id, await progress(run_id))
        except Exception as exc:  # progress is a nicety; the watch decides the outcome
            log.warning("run %s: progress unavailable (%s)", run_id, exc)


async def coordinate_command(
    source_uri: str,
    settings: Settings,
    run_id: str | None,
    *,
    observer: Observer | None = None,
) -> int:
    """``aion-ingest coordinate SOURCE``: the chart's coordinator, wired to the real steps."""
    from ingest.planning.command import plan_source
    from ingest.planning.model import RunPlan
    from ingest.report import build_report, load_plan, shard_statuses
    from ingest.state import open_state
    from ingest.worker.ids import resolve_pending_ids

    async with open_state(settings.state, settings) as store:

        async def plan(rid: str) -> int:
            outcome = await plan_source(source_uri, settings, store, run_id=rid)
            log.info("run %s: %s plan, %d shards", rid, outcome.status, outcome.plan.shards)
            return outcome.plan.shards

        async def report(rid: str, verdict: Verdict) -> str | None:
            plan_ = await load_plan(store, rid)
            ids = await resolve_pending_ids(store, rid, plan_.shards, settings)
            log.info("run %s: %s", rid, ids.summary())
            merged = await build_report(
                store, rid, verdict=verdict.kind.value, failed_indexes=sorted(verdict.failed)
            )
            for line in merged.summary().splitlines():
                log.info("run %s: %s", rid, line)
            return merged.report_csv

        plans: dict[str, RunPlan] = {}  # read once: progress ticks re-read checkpoints only

        async def progress(rid: str) -> str:
            if rid not in plans:
                plans[rid] = await load_plan(store, rid)
            plan_ = plans[rid]
            statuses = await shard_statuses(store, plan_)
            done = sum(s.done for s in statuses)
            complete = sum(1 for s in statuses if s.state == "complete")
            return (
                f"{done:,}/{plan_.items:,} objects have an outcome; "
                f"{complete}/{plan_.shards} shards complete"
            )

        return await coordinate(
            settings,
            plan=plan,
            report=report,
            run_id=run_id,
            progress=progress,
            observer=observer,
        )
