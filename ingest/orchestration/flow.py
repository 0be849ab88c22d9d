"""One run, one flow: plan → launch → watch → report → exit code, wherever the workers run.

``aion-ingest run`` (local processes) and ``aion-ingest coordinate`` (a Kubernetes
Indexed Job) are this same sequence over a :class:`Launcher`. The steps that touch the
state store (plan, progress, report) come in as :class:`RunSteps`
(:class:`ingest.orchestration.steps.StoreSteps` in production, small fakes in tests), so
this module sequences and owns no I/O of its own.

Restarting is safe at every step: the planner reads ``run.json`` back when it exists, a
launcher that finds the run's workers already running adopts them (:meth:`Launcher.attach`)
instead of launching again, and the watch simply starts over.

SIGINT or SIGTERM stops the watch: the launcher decides what that means for the workers
(local processes get SIGTERM and flush their checkpoints; a worker Job is the run and
keeps running, for the next coordinator to adopt), and the exit code is 128 + the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Collection, Iterator
from typing import Protocol

from ingest.errors import ConfigError
from ingest.launch.semantics import Verdict, format_indexes
from ingest.orchestration.metrics import RunMetrics
from ingest.orchestration.progress import ProgressView, RunProgress
from ingest.settings import MetricsSettings
from ingest.state.records import RunPlan

log = logging.getLogger(__name__)

Say = Callable[[str], None]
"""Where the flow talks to people: stderr lines locally, log records in a cluster."""


class Launcher(Protocol):
    """Where the workers of a run run: local processes, or a Kubernetes Indexed Job."""

    async def resolve_run_id(self, run_id: str | None) -> str | None:
        """The run id: the one asked for, else one the launcher derives (a coordinator
        Job's name), else None (the planner makes a new one)."""
        ...

    async def attach(self, run_id: str) -> bool:
        """Adopt the run's workers when they exist already (a restarted coordinator)."""
        ...

    async def launch(self, plan: RunPlan, complete: Collection[int]) -> None:
        """Start the workers of ``plan``; ``complete`` shards need none (a resumed run)."""
        ...

    async def watch(self, stop: asyncio.Event) -> Verdict | None:
        """Wait for the workers' verdict; None when ``stop`` was set first."""
        ...

    def stopped(self, run_id: str, signum: int) -> str:
        """What stopping the watch by ``signum`` did, and what to do next (one message)."""
        ...

    def failure_hints(self, run_id: str, verdict: Verdict) -> list[str]:
        """Where to look, and how to go on, when some shards failed."""
        ...


class RunSteps(Protocol):
    """The run's own steps, all against the state store."""

    async def plan(self, run_id: str | None) -> RunPlan:
        """Plan the run (or read back its finished plan)."""
        ...

    async def complete_shards(self, plan: RunPlan) -> list[int]:
        """Shards whose checkpoints say they are complete."""
        ...

    async def progress(self, run_id: str) -> RunProgress:
        """A sample of the run's progress."""
        ...

    async def report(self, run_id: str, verdict: Verdict | None) -> list[str]:
        """Merge the report; its summary lines."""
        ...


async def orchestrate(
    launcher: Launcher,
    steps: RunSteps,
    *,
    run_id: str | None = None,
    say: Say,
    view: ProgressView | None = None,
    progress_seconds: float = 10.0,
    stop: asyncio.Event | None = None,
    show: Say | None = None,
    metrics: RunMetrics | None = None,
) -> int:
    """Run one ingestion to its end; the process exit code (DESIGN.md's table).

    ``stop`` (default: set by SIGINT/SIGTERM) ends the watch early; ``view`` shows the
    progress every ``progress_seconds`` (a bar on a terminal, log lines elsewhere);
    ``show`` gets the run's result (the report's summary, failed indexes and their
    causes), default ``say`` (``aion-ingest run`` sends it to stdout); ``metrics`` hears
    the phase, the plan and every sample (the run's ``/metrics``).
    """
    show = show or say
    metrics = metrics or RunMetrics(MetricsSettings())
    run_id = await launcher.resolve_run_id(run_id)
    if run_id is not None and await launcher.attach(run_id):
        say(f"run {run_id}: its workers are running already; watching them")
    else:
        plan = await steps.plan(run_id)
        run_id = plan.run_id
        metrics.planned(plan)
        if plan.items == 0:
            say(f"run {run_id}: nothing to upload")
            metrics.phase = "reporting"
            for line in await steps.report(run_id, None):
                show(line)
            metrics.phase = "done"
            return 0
        complete = await steps.complete_shards(plan)
        if complete:
            say(f"run {run_id}: {len(complete)}/{plan.shards} shards complete already")
        await launcher.launch(plan, complete)

    metrics.run_id = run_id
    metrics.phase = "uploading"
    view = view or ProgressView()
    received: list[int] = []
    stop = stop or asyncio.Event()
    try:
        with _stop_on_signals(stop, received), _log_filter(view):
            ticker = asyncio.create_task(
                _show_progress(run_id, steps, view, progress_seconds, metrics),
                name=f"progress:{run_id}",
            )
            try:
                await _sample(run_id, steps, view, metrics)  # the baseline: done before this start
                verdict = await launcher.watch(stop)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        await _sample(run_id, steps, view, metrics)
    finally:
        view.end()  # an error's message must not land on the bar's line
    if verdict is None:
        signum = received[0] if received else signal.SIGTERM
        say(launcher.stopped(run_id, signum))
        return 128 + signum
    say(f"run {run_id}: workers ended: {verdict.describe()}")
    metrics.failed_shards = len(verdict.failed)
    metrics.phase = "reporting"
    for line in await steps.report(run_id, verdict):
        show(line)
    metrics.phase = "done"
    if verdict.exit_code:
        if verdict.failed:
            show(f"run {run_id}: indexes {format_indexes(verdict.failed)} failed")
        for hint in launcher.failure_hints(run_id, verdict):
            show(hint)
    return int(verdict.exit_code)


def require_state(state: str | None) -> str:
    """The state store URI; ConfigError naming the setting when there is none."""
    if not state:
        raise ConfigError("no state store: set INGEST_STATE (s3://bucket/prefix or file:///path)")
    return state


async def _sample(
    run_id: str, steps: RunSteps, view: ProgressView, metrics: RunMetrics | None = None
) -> None:
    try:
        progress = await steps.progress(run_id)
        if metrics is not None:
            metrics.seen(progress)
        view.show(progress)
    except Exception as exc:  # progress is a nicety; the watch decides the outcome
        log.warning("run %s: progress unavailable (%s)", run_id, exc)


async def _show_progress(
    run_id: str, steps: RunSteps, view: ProgressView, every: float, metrics: RunMetrics
) -> None:
    """Show the state store's view of the run every ``every`` seconds until cancelled."""
    while True:
        await asyncio.sleep(every)
        await _sample(run_id, steps, view, metrics)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event, received: list[int]) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (and are recorded) while the watch runs."""
    loop = asyncio.get_running_loop()
    installed = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        log.warning("%s: stopping the watch", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal, int(signum))
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def _log_filter(view: ProgressView) -> Iterator[None]:
    """Log lines erase the progress bar first (the next tick redraws it)."""
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(view.filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(view.filter)
