"""``aion-ingest coordinate SOURCE``: the chart's coordinator, the run's workers being a
Kubernetes Indexed Job (:mod:`ingest.orchestration.kubernetes`)."""

from __future__ import annotations

import logging

from ingest.commands.pacing import forecaster
from ingest.orchestration.flow import orchestrate, require_state
from ingest.orchestration.kubernetes import KubernetesJob, Observer
from ingest.orchestration.metrics import RunMetrics
from ingest.orchestration.progress import ProgressView
from ingest.orchestration.steps import StoreSteps
from ingest.planning.planner import PlanOutcome, plan_source
from ingest.settings import Settings
from ingest.state import open_state

log = logging.getLogger("ingest.coordinator")


def _say(text: str) -> None:
    log.info("%s", text)


def _log_plan(outcome: PlanOutcome) -> None:
    plan = outcome.plan
    log.info("run %s: %s plan, %d shards", plan.run_id, outcome.status, plan.shards)


async def coordinate_command(
    source_uri: str,
    settings: Settings,
    run_id: str | None,
    *,
    observer: Observer | None = None,
) -> int:
    """Plan, create (or adopt) the worker Job, watch it, report; the exit code."""
    from ingest.launch.kubernetes import Clients, KubernetesLauncher

    state_uri = require_state(settings.state)
    launcher = KubernetesLauncher(Clients.connect(settings.kubernetes), settings.kubernetes)
    async with open_state(state_uri, settings) as store:

        async def planner(rid: str | None) -> PlanOutcome:
            return await plan_source(source_uri, settings, store, run_id=rid)

        steps = StoreSteps(store, planner, settings=settings, on_plan=_log_plan)
        # the chart sets INGEST_METRICS__PORT
        metrics = RunMetrics(settings.metrics, forecast=forecaster(settings, None))
        async with metrics.serving():
            code = await orchestrate(
                KubernetesJob(launcher, state_uri, observer=observer),
                steps,
                run_id=run_id,
                say=_say,
                view=ProgressView(tty=False),  # a pod's log, even when run from a terminal
                progress_seconds=settings.kubernetes.progress_seconds,
                metrics=metrics,
            )
        if steps.last_report is not None:
            metrics.by_outcome = steps.last_report.by_outcome
        await metrics.push(code)
        return code
