"""``aion-ingest run`` / ``resume`` / ``status`` / ``report``: the pipeline on one machine.

``run`` plans (as ``aion-ingest plan``), starts one ``aion-ingest work`` process per shard
index with ``JOB_COMPLETION_INDEX`` set, at most ``--parallelism`` at a time, under the
same Indexed Job model the Kubernetes coordinator uses (:mod:`ingest.launch.semantics`),
shows one combined progress view read from the checkpoints, and merges the report.
Ctrl-C stops the workers with SIGTERM (they flush their checkpoints) and prints how to
resume. ``status`` reads the state store alone, so it works on a run in progress anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from ingest.errors import ConfigError, ExitCode
from ingest.items import Item
from ingest.launch.local import LocalLauncher
from ingest.launch.semantics import JobSpec
from ingest.planning.command import plan_source
from ingest.planning.forecast import forecast_lines
from ingest.planning.model import RunPlan
from ingest.planning.summary import render_text
from ingest.report import build_report, failed_items, load_plan, shard_statuses
from ingest.settings import Settings
from ingest.state import StateStore, open_state
from ingest.state.base import RunLayout
from ingest.worker.ids import resolve_pending_ids
from ingest.worker.progress import human_bytes, human_duration


def data_dir() -> Path:
    """The user's data directory for aion-ingest (XDG_DATA_HOME, else ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "aion-ingest"


def default_state_uri() -> str:
    return (data_dir() / "state").as_uri()


def _say(text: str, stream: TextIO | None = None) -> None:
    print(text, file=stream or sys.stderr, flush=True)


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


class RunProgress:
    """One progress view for all shards, read from their checkpoints."""

    def __init__(self, store: StateStore, plan: RunPlan, stream: TextIO | None = None) -> None:
        self.store = store
        self.plan = plan
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", bool)())
        self.interval = 1.0 if self.tty else 10.0
        self._start = time.monotonic()
        self._first_done: int | None = None
        self._drawn = 0
        self._last_fraction = 0.0

    async def line(self) -> str:
        statuses = await shard_statuses(self.store, self.plan)
        done = sum(s.done for s in statuses)
        done_bytes = sum(s.bytes * s.done // max(s.items, 1) for s in statuses)
        complete = sum(1 for s in statuses if s.state == "complete")
        if self._first_done is None:
            self._first_done = done  # done before this process started (a resume)
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = (done - self._first_done) / elapsed
        remaining = self.plan.items - done
        eta = remaining / rate if rate > 0 else None
        pct = 100.0 * done / self.plan.items if self.plan.items else 100.0
        self._last_fraction = pct / 100.0
        return (
            f"{done:,}/{self.plan.items:,} objects ({pct:.1f}%), ~{human_bytes(done_bytes)}, "
            f"shards {complete}/{self.plan.shards} complete, {rate:.1f} obj/s, "
            f"ETA {human_duration(eta if remaining else 0.0)}"
        )

    def clear(self) -> None:
        """Erase the bar (before another line is written under it); the next tick redraws."""
        if self.tty and self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """As a logging filter: clear the bar before each log line, so they never collide."""
        self.clear()
        return True

    async def emit(self) -> None:
        text = await self.line()
        if self.tty:
            done = self._last_fraction
            text = "[" + "#" * int(done * 24) + "-" * (24 - int(done * 24)) + "] " + text
            self.stream.write("\r" + text + " " * max(0, self._drawn - len(text)))
            self.stream.flush()
            self._drawn = len(text)
        else:
            _say(f"progress: {text}", self.stream)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.emit()

    async def close(self) -> None:
        await self.emit()
        if self.tty:
            self.stream.write("\n")


def worker_command(run_id: str, state_uri: str) -> list[str]:
    return [sys.executable, "-m", "ingest", "work", "--run-id", run_id, "--state", state_uri]


async def launch_and_report(
    store: StateStore,
    plan: RunPlan,
    settings: Settings,
    *,
    parallelism: int,
    env_overrides: Mapping[str, str],
) -> int:
    """Run the workers of ``plan`` locally, then merge the report. Returns the exit code.

    Shards whose checkpoints say they are complete (a resumed run) start no process.
    """
    state_uri = store.uri
    parallelism = max(1, min(parallelism, plan.shards))
    env = dict(os.environ)
    env.update(env_overrides)
    env.update(INGEST_STATE=state_uri, INGEST_WORKER__PARALLEL_WORKERS=str(parallelism))
    env.setdefault("INGEST_LOG__FORMAT", "text")  # their logs go to files people read
    log_dir = data_dir() / "logs" / plan.run_id
    log_dir.mkdir(parents=True, exist_ok=True)
    spec = JobSpec(
        completions=plan.shards,
        parallelism=parallelism,
        backoff_limit_per_index=settings.kubernetes.backoff_limit_per_index,
        max_failed_indexes=settings.kubernetes.max_failed_indexes,
    )
    launcher = LocalLauncher(
        spec, lambda index: worker_command(plan.run_id, state_uri), env=env, log_dir=log_dir
    )
    complete = [s.index for s in await shard_statuses(store, plan) if s.state == "complete"]
    if complete:
        _say(f"run {plan.run_id}: {len(complete)}/{plan.shards} shards complete already")
    launcher.mark_complete(complete)
    _say(f"workers: {plan.shards} shards, {parallelism} at a time; their logs: {log_dir}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    progress = RunProgress(store, plan)
    await progress.line()  # the baseline: what was done before this start
    ticker = asyncio.create_task(progress.run(), name="run-progress")
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(progress)
    try:
        outcome = await launcher.run(stop)
    finally:
        for handler in handlers:
            handler.removeFilter(progress)
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    await progress.close()
    if outcome.interrupted or outcome.verdict is None:
        _say(
            f"interrupted: workers flushed their checkpoints. Resume with:\n"
            f"  aion-ingest resume {plan.run_id} --state {state_uri}"
        )
        return 130
    verdict = outcome.verdict
    _say(f"job: {verdict.describe()}")
    _say((await resolve_pending_ids(store, plan.run_id, plan.shards, settings)).summary())
    report = await build_report(
        store, plan.run_id, verdict=verdict.kind.value, failed_indexes=sorted(verdict.failed)
    )
    _say(report.summary())
    if verdict.exit_code != ExitCode.OK:
        for index in sorted(verdict.failed):
            path = launcher.log_path(index)
            _say(f"index {index} failed; its log: {path}")
        _say(f"once the cause is fixed: aion-ingest resume {plan.run_id} --state {state_uri}")
    return int(verdict.exit_code)


async def _items(items: list[Item]) -> AsyncIterator[Item]:
    for item in items:
        yield item


async def run_command(
    source_uri: str | None,
    settings: Settings,
    *,
    parallelism: int,
    run_id: str | None,
    retry_failed: str | None,
    env_overrides: Mapping[str, str],
) -> int:
    """``aion-ingest run``: plan, launch, wait, report."""
    state_uri = settings.state or default_state_uri()
    settings.state = state_uri
    _say(f"state store: {state_uri}")
    async with open_state(state_uri, settings) as store:
        if retry_failed:
            original, failed = await failed_items(store, retry_failed)
            if not failed:
                _say(f"run {retry_failed} has no failed items: nothing to retry")
                return 0
            _say(f"retrying {len(failed):,} failed items of run {retry_failed}")
            outcome = await plan_source(
                original.source, settings, store, run_id=run_id, items=_items(failed)
            )
        else:
            if not source_uri:
                raise ConfigError("no SOURCE given: aion-ingest run SOURCE (or --retry-failed ID)")
            outcome = await plan_source(source_uri, settings, store, run_id=run_id)
        extra = forecast_lines(outcome.plan, settings, parallelism)
        _say(render_text(outcome.plan, outcome.status, outcome.state_uri, extra))
        plan = outcome.plan
        if plan.items == 0:
            _say("nothing to upload")
            await build_report(store, plan.run_id, verdict="Complete")
            return 0
        return await launch_and_report(
            store, plan, settings, parallelism=parallelism, env_overrides=env_overrides
        )


async def resume_command(
    run_id: str, settings: Settings, *, parallelism: int, env_overrides: Mapping[str, str]
) -> int:
    """``aion-ingest resume RUN_ID``: relaunch the indexes that are not complete."""
    state_uri = settings.state or default_state_uri()
    async with open_state(state_uri, settings) as store:
        plan = await load_plan(store, run_id)
        return await launch_and_report(
            store, plan, settings, parallelism=parallelism, env_overrides=env_overrides
        )


async def status_command(run_id: str, settings: Settings, *, as_json: bool) -> int:
    """``aion-ingest status RUN_ID``: per-shard progress from the state store alone."""
    state_uri = settings.state or default_state_uri()
    async with open_state(state_uri, settings) as store:
        plan = await load_plan(store, run_id)
        statuses = await shard_statuses(store, plan)
        report = await store.get(RunLayout(run_id).report_json)
    done = sum(s.done for s in statuses)
    if as_json:
        doc = {
            "run_id": run_id,
            "items": plan.items,
            "done": done,
            "shards": [dataclasses.asdict(s) | {"state": s.state} for s in statuses],
            "report": json.loads(report.data) if report else None,
        }
        print(json.dumps(doc, indent=1))
        return 0
    print(f"run {run_id} ({plan.source}): {done:,}/{plan.items:,} objects have an outcome")
    print(f"{'shard':>5}  {'done':>15}  {'%':>6}  {'state':<12} worker        updated")
    for s in statuses:
        pct = 100.0 * s.done / s.items if s.items else 100.0
        print(
            f"{s.index:>5}  {f'{s.done:,}/{s.items:,}':>15}  {pct:>5.1f}%  {s.state:<12} "
            f"{s.worker or '-':<13} {s.updated_at or '-'}"
        )
    if report:
        print(f"report: {state_uri.rstrip('/')}/{RunLayout(run_id).report_csv}")
    return 0


async def report_command(run_id: str, settings: Settings, *, failed_only: bool) -> int:
    """``aion-ingest report RUN_ID``: merge the results into report.json and report.csv."""
    state_uri = settings.state or default_state_uri()
    async with open_state(state_uri, settings) as store:
        report = await build_report(store, run_id, failed_only=failed_only)
    print(report.summary())
    return 0
