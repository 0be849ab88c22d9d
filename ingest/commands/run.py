"""``aion-ingest run`` / ``resume``: the whole run on one machine, with local worker processes.

``run`` plans (as ``aion-ingest plan``), then the orchestration launches one worker process
per shard index, shows one progress view read from the checkpoints, and merges the report.
Ctrl-C stops the workers with SIGTERM (they flush their checkpoints) and prints how to
resume; ``resume`` relaunches the shards that are not complete.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ingest.errors import ConfigError
from ingest.logs import redact
from ingest.orchestration.flow import orchestrate
from ingest.orchestration.local import LocalProcesses, default_state_uri
from ingest.orchestration.progress import ProgressView
from ingest.orchestration.steps import Planner, StoreSteps, listed
from ingest.planning.forecast import forecast_lines
from ingest.planning.planner import PlanOutcome, plan_source
from ingest.planning.summary import render_text
from ingest.report import failed_items
from ingest.settings import Settings
from ingest.state import StateStore, open_state

_LOCAL_PROGRESS_SECONDS = 10.0  # off a terminal; on one the bar is redrawn every second


def say(text: str) -> None:
    """A console line; registered secrets redacted (a summary quotes servers' reasons)."""
    print(redact(text), file=sys.stderr, flush=True)


def overrides_to_env(overrides: Mapping[str, Any]) -> dict[str, str]:
    """Command-line settings as INGEST_* variables, so worker processes see them too."""
    env: dict[str, str] = {}
    for group, value in overrides.items():
        if isinstance(value, dict):
            for field, v in value.items():
                name = f"INGEST_{group.upper()}__{field.upper()}"
                env[name] = json.dumps(v) if isinstance(v, list | dict | bool) else str(v)
        else:
            env[f"INGEST_{group.upper()}"] = str(value)
    return env


def _plan_shower(settings: Settings, parallelism: int) -> Callable[[PlanOutcome], None]:
    """Prints each plan's summary, the forecast (ingest/planning/forecast.py) last."""

    def show(outcome: PlanOutcome) -> None:
        extra = forecast_lines(outcome.plan, settings, parallelism)
        say(render_text(outcome.plan, outcome.status, outcome.state_uri, extra))

    return show


async def _run_locally(
    store: StateStore,
    settings: Settings,
    planner: Planner | None,
    *,
    run_id: str | None,
    parallelism: int,
    env_overrides: Mapping[str, str],
) -> int:
    view = ProgressView()
    launcher = LocalProcesses(
        store.uri,
        parallelism=parallelism,
        job=settings.kubernetes,
        env_overrides=env_overrides,
        say=say,
    )
    steps = StoreSteps(
        store, planner, settings=settings, on_plan=_plan_shower(settings, parallelism)
    )
    return await orchestrate(
        launcher,
        steps,
        run_id=run_id,
        say=say,
        view=view,
        progress_seconds=1.0 if view.tty else _LOCAL_PROGRESS_SECONDS,
    )


async def run_command(
    source_uri: str | None,
    settings: Settings,
    *,
    parallelism: int,
    run_id: str | None,
    retry_failed: str | None,
    env_overrides: Mapping[str, str],
) -> int:
    """``aion-ingest run``: plan, launch, watch, report."""
    state_uri = settings.state or default_state_uri()
    settings.state = state_uri
    say(f"state store: {state_uri}")
    async with open_state(state_uri, settings) as store:
        planner: Planner
        if retry_failed:
            original, failed = await failed_items(store, retry_failed)
            if not failed:
                say(f"run {retry_failed} has no failed items: nothing to retry")
                return 0
            say(f"retrying {len(failed):,} failed items of run {retry_failed}")

            async def planner(rid: str | None) -> PlanOutcome:
                return await plan_source(
                    original.source, settings, store, run_id=rid, items=listed(failed)
                )

        else:
            if not source_uri:
                raise ConfigError("no SOURCE given: aion-ingest run SOURCE (or --retry-failed ID)")
            source = source_uri

            async def planner(rid: str | None) -> PlanOutcome:
                return await plan_source(source, settings, store, run_id=rid)

        return await _run_locally(
            store,
            settings,
            planner,
            run_id=run_id,
            parallelism=parallelism,
            env_overrides=env_overrides,
        )


async def resume_command(
    run_id: str, settings: Settings, *, parallelism: int, env_overrides: Mapping[str, str]
) -> int:
    """``aion-ingest resume RUN_ID``: relaunch the indexes that are not complete."""
    state_uri = settings.state or default_state_uri()
    async with open_state(state_uri, settings) as store:
        return await _run_locally(
            store,
            settings,
            None,
            run_id=run_id,
            parallelism=parallelism,
            env_overrides=env_overrides,
        )
