"""The run's metrics: ``/metrics`` while the flow runs, one Pushgateway push at its end.

The flow tells :class:`RunMetrics` what it does (the phase, the plan, each progress
sample, the report); the run's collector reads :meth:`RunMetrics.snapshot` at scrape time,
so ``/metrics``, the progress lines and ``aion-ingest status`` show the same rate and ETA
(all come from :class:`~ingest.orchestration.progress.RunProgress`). On one machine the
workers' own series come through a :class:`~ingest.metrics.relay.WorkerRelay` on the same
port. Neither the endpoint nor the push can fail the run: both log once and go on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping

from ingest.metrics.push import RunResult, push_run_result_async
from ingest.metrics.relay import WorkerRelay
from ingest.metrics.run import RunCollector, RunSnapshot
from ingest.metrics.server import serve_metrics
from ingest.orchestration.progress import RunProgress
from ingest.settings import MetricsSettings
from ingest.state.records import RunPlan

log = logging.getLogger(__name__)

# RunProgress's shard states → the metric's (names.SHARD_STATES).
_SHARD_STATES = {"not started": "pending", "in progress": "running", "complete": "complete"}


class RunMetrics:
    """What the run's collector reads, fed by the flow."""

    def __init__(
        self,
        settings: MetricsSettings,
        *,
        port: int | None = None,
        relay: WorkerRelay | None = None,
        clock: Callable[[], float] = time.monotonic,
        forecast: Callable[[RunPlan], float | None] | None = None,
    ) -> None:
        self.settings = settings
        self.forecast = forecast  # a plan's predicted duration (commands: planning/forecast)
        self.forecast_seconds: float | None = None
        self.port = settings.port if port is None else port
        self.relay = relay
        self.clock = clock
        self.started = clock()
        self.phase = "planning"
        self.run_id: str | None = None
        self.plan: RunPlan | None = None
        self.progress: RunProgress | None = None
        self.failed_shards = 0
        self.by_outcome: Mapping[str, int] = {}

    def planned(self, plan: RunPlan) -> None:
        self.run_id = plan.run_id
        self.plan = plan
        if self.forecast is not None:
            self.forecast_seconds = self.forecast(plan)

    def seen(self, progress: RunProgress) -> None:
        self.run_id = progress.run_id
        self.progress = progress

    def snapshot(self) -> RunSnapshot | None:
        """The run now; None before its id is known (nothing is exported)."""
        if self.run_id is None:
            return None
        p, plan = self.progress, self.plan
        states = dict.fromkeys(_SHARD_STATES.values(), 0)
        if p is not None:
            for state, count in p.shard_states().items():
                states[_SHARD_STATES.get(state, state)] += count
        moved = min(self.failed_shards, states["running"] + states["pending"])
        states["failed"] = moved
        states["running"] -= min(moved, states["running"])
        quota = (plan.quota or {}).get("available") if plan is not None else None
        return RunSnapshot(
            run_id=self.run_id,
            phase=self.phase,
            objects_planned=p.planned_objects if p else (plan.items if plan else 0),
            objects_done=p.done_objects if p else 0,
            bytes_planned=p.planned_bytes if p else (plan.bytes if plan else 0),
            bytes_done=p.done_bytes if p else 0,
            shard_states=states,
            eta_seconds=p.eta_seconds if p and self.phase == "uploading" else None,
            quota_available_files=quota if isinstance(quota, int) else None,
            forecast_seconds=self.forecast_seconds,
        )

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Serve the run's (and the relayed workers') series while inside, if a port is set."""
        collectors: list[RunCollector | WorkerRelay] = [RunCollector(self.snapshot)]
        if self.relay is not None:
            collectors.append(self.relay)
        async with serve_metrics(
            self.settings,
            *collectors,
            port=self.port,
            before_scrape=self.relay.refresh if self.relay is not None else None,
        ):
            yield

    async def push(self, exit_code: int) -> bool:
        """The run's end figures to the Pushgateway, when one is set; never raises."""
        if not self.settings.pushgateway_url or self.run_id is None:
            return False
        result = RunResult(
            run_id=self.run_id,
            exit_code=exit_code,
            duration_seconds=self.clock() - self.started,
            objects_by_outcome=dict(self.by_outcome),
        )
        try:
            return await push_run_result_async(self.settings, result)
        except Exception as exc:  # push_run_result never raises; this is belt and braces
            log.warning("run %s: Pushgateway push failed (%s); the run goes on", self.run_id, exc)
            return False
