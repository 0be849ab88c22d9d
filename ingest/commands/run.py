"""``aion-ingest run`` / ``resume``: the whole run on one machine, with local worker processes.

``run`` plans (as ``aion-ingest plan``), then the orchestration launches one worker process
per shard index, shows one progress view read from the checkpoints, and merges the report.
Ctrl-C stops the workers with SIGTERM (they flush their checkpoints) and prints how to
resume; ``resume`` relaunches the shards that are not complete.
"""

from __future__ import annotations

import collections
import json
import sys
from collections.abc import Mapping
from typing import Any

from ingest.commands.pacing import choose_tier, forecaster, with_tier
from ingest.commands.pacing import describe as describe_pacing
from ingest.errors import ConfigError
from ingest.items import FINAL_CODES, Item
from ingest.logs import redact
from ingest.metrics.relay import WorkerRelay
from ingest.orchestration.flow import orchestrate
from ingest.orchestration.local import LocalProcesses, default_state_uri
from ingest.orchestration.metrics import RunMetrics
from ingest.orchestration.progress import ProgressView
from ingest.orchestration.steps import Planner, StoreSteps, listed
from ingest.planning.forecast import forecast_lines
from ingest.planning.planner import PlanOutcome, plan_source
from ingest.planning.summary import render_text
from ingest.report import failed_with_codes
from ingest.settings import Settings
from ingest.state import StateStore, open_state
from ingest.state.base import RunLayout

_LOCAL_PROGRESS_SECONDS = 10.0  # off a terminal; on one the bar is redrawn every second


def say(text: str) -> None:
    """A console line; registered secrets redacted (a summary quotes servers' reasons)."""
    print(redact(text), file=sys.stderr, flush=True)


def result(text: str) -> None:
    """The run's result (its summary, failed indexes and causes): stdout, secrets redacted."""
    print(redact(text), flush=True)


async def _print_json_result(store: StateStore, run_id: str | None, code: int) -> None:
    """``--json``: one JSON document on stdout: run id, exit code, report (or null)."""
    report = None
    if run_id is not None:
        blob = await store.get(RunLayout(run_id).report_json)
        report = json.loads(blob.data) if blob is not None else None
    doc = {"run_id": run_id, "exit_code": code, "state": store.uri, "report": report}
    print(json.dumps(doc, indent=1), flush=True)


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


def split_retryable(
    rows: list[tuple[Item, str]], *, retry_all: bool
) -> tuple[list[Item], collections.Counter[str]]:
    """The failed items to retry, and the count per failure code of those left out (the
    failures no retry can fix, ``items.FINAL_CODES``: refused by the API, too large,
    unsupported, gone or changed at the source)."""
    keep: list[Item] = []
    left_out: collections.Counter[str] = collections.Counter()
    for item, code in rows:
        if retry_all or code not in FINAL_CODES:
            keep.append(item)
        else:
            left_out[code] += 1
    return keep, left_out


def _show_plan(outcome: PlanOutcome, settings: Settings, parallelism: int | None = None) -> None:
    """The plan's summary, the forecast (ingest/planning/forecast.py) last, and how the
    shards were counted."""
    extra = forecast_lines(outcome.plan, settings, parallelism)
    say(render_text(outcome.plan, outcome.status, outcome.state_uri, extra))
    plan = outcome.plan
    if parallelism and outcome.status != "existing" and plan.items:
        if plan.shards == parallelism and plan.items >= parallelism:
            say(f"{plan.shards} shards: one per worker process (-p {parallelism})")
        elif plan.shards < parallelism:
            why = "--shards" if plan.items >= parallelism else f"only {plan.items} objects"
            say(f"{plan.shards} shards, fewer than -p {parallelism}: {why}")


async def _run_locally(
    store: StateStore,
    settings: Settings,
    planner: Planner | None,
    *,
    run_id: str | None,
    parallelism: int,
    env_overrides: Mapping[str, str],
    as_json: bool = False,
) -> int:
    view = ProgressView()
    planned: list[str] = [run_id] if run_id else []
    # --metrics-port: the run's series and, relayed, every worker's, on that one port.
    relay = (
        WorkerRelay(linger=settings.metrics.linger_seconds)
        if settings.metrics.port is not None
        else None
    )
    metrics = RunMetrics(settings.metrics, relay=relay, forecast=forecaster(settings, parallelism))
    launcher = LocalProcesses(
        store.uri,
        parallelism=parallelism,
        job=settings.kubernetes,
        env_overrides=env_overrides,
        say=say,
        relay=relay,
    )

    def on_plan(outcome: PlanOutcome) -> None:
        planned.append(outcome.plan.run_id)
        tier, origin = choose_tier(settings, outcome.plan.quota)
        _show_plan(outcome, with_tier(settings, tier), parallelism)  # the workers' pacing
        say(describe_pacing(settings, tier, origin))
        if tier != settings.api.tier:  # the workers read their settings from the environment
            launcher.env_overrides["INGEST_API__TIER"] = tier

    if planner is None:  # resume: the plan is read back; the settings alone tell the pacing
        say(describe_pacing(settings, settings.api.tier, "from the settings"))
    steps = StoreSteps(store, planner, settings=settings, on_plan=on_plan)
    if settings.worker.fork_server:  # its imports overlap the plan's listing
        await launcher.warm()
    try:
        async with metrics.serving():
            code = await orchestrate(
                launcher,
                steps,
                run_id=run_id,
                say=say,
                view=view,
                progress_seconds=1.0 if view.tty else _LOCAL_PROGRESS_SECONDS,
                show=say if as_json else result,
                metrics=metrics,
            )
    finally:
        await launcher.aclose()
    if steps.last_report is not None:
        metrics.by_outcome = steps.last_report.by_outcome
    await metrics.push(code)
    if as_json:
        await _print_json_result(store, planned[-1] if planned else None, code)
    return code


async def run_command(
    source_uri: str | None,
    settings: Settings,
    *,
    parallelism: int,
    run_id: str | None,
    retry_failed: str | None,
    env_overrides: Mapping[str, str],
    retry_all: bool = False,
    as_json: bool = False,
) -> int:
    """``aion-ingest run``: plan, launch, watch, report."""
    state_uri = settings.state or default_state_uri()
    settings.state = state_uri
    if settings.plan.shards is None:
        settings.plan.min_shards = parallelism
    say(f"state store: {state_uri}")
    async with open_state(state_uri, settings) as store:
        planner: Planner
        if retry_failed:
            original, rows = await failed_with_codes(store, retry_failed)
            if not rows:
                say(f"run {retry_failed} has no failed items: nothing to retry")
                return 0
            failed, left_out = split_retryable(rows, retry_all=retry_all)
            if left_out:
                said = ", ".join(f"{code} {n:,}" for code, n in sorted(left_out.items()))
                say(
                    f"leaving out {sum(left_out.values()):,} failures a retry cannot fix "
                    f"({said}); --all retries them too"
                )
            if not failed:
                say(f"run {retry_failed}: no retryable failures: nothing to retry")
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
            as_json=as_json,
        )


async def resume_command(
    run_id: str,
    settings: Settings,
    *,
    parallelism: int,
    env_overrides: Mapping[str, str],
    as_json: bool = False,
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
            as_json=as_json,
        )
