"""What the run's collector reads: the flow's phase, the plan's quota, the progress model."""

from __future__ import annotations

import dataclasses

import pytest

from ingest.commands.pacing import forecaster
from ingest.orchestration.metrics import RunMetrics
from ingest.orchestration.progress import RunTracker
from ingest.settings import MetricsSettings, load_settings
from tests.orchestration.test_coordinator import fake_plan
from tests.orchestration.test_progress import Clock, statuses
from tests.worker.memstore import MemoryStateStore


def test_nothing_is_exported_before_the_run_id_is_known() -> None:
    assert RunMetrics(MetricsSettings()).snapshot() is None


def test_the_snapshot_is_the_progress_model_with_the_flows_phase_and_the_plans_quota() -> None:
    plan = dataclasses.replace(fake_plan("r1", 3), quota={"available": 1234})
    clock = Clock()
    tracker = RunTracker(MemoryStateStore(), plan, clock=clock)
    metrics = RunMetrics(MetricsSettings())
    metrics.planned(plan)
    planned = metrics.snapshot()
    assert planned is not None
    assert (planned.phase, planned.objects_planned, planned.objects_done) == ("planning", 30, 0)
    assert planned.quota_available_files == 1234

    metrics.phase = "uploading"
    metrics.seen(tracker.record(statuses(0, 0, 0)))
    clock.now = 10.0
    progress = tracker.record(statuses(10, 5, 0))
    metrics.seen(progress)
    snap = metrics.snapshot()
    assert snap is not None
    assert (snap.objects_done, snap.bytes_done, snap.bytes_planned) == (15, 150, 300)
    assert snap.eta_seconds == progress.eta_seconds == 10.0  # the same ETA as status and logs
    assert dict(snap.shard_states) == {"pending": 1, "running": 1, "complete": 1, "failed": 0}

    metrics.failed_shards = 1  # the verdict: the running shard failed
    metrics.phase = "reporting"
    snap = metrics.snapshot()
    assert snap is not None
    assert dict(snap.shard_states) == {"pending": 1, "running": 0, "complete": 1, "failed": 1}
    assert snap.eta_seconds is None  # no ETA once the workers ended


def test_the_forecast_is_the_plans_at_the_pacing_its_workers_use() -> None:
    """``aion_ingest_run_forecast_seconds``: the plan's predicted duration at the tier the
    workers will pace to (quota-check's monthly limit when the user set none)."""
    histogram = {"<64KiB": 30}
    plan = dataclasses.replace(
        fake_plan("r2", 3), histogram=histogram, quota={"monthly_limit": 1000, "available": 900}
    )
    settings = load_settings(worker={"batch_results": "accept"})
    metrics = RunMetrics(MetricsSettings(), forecast=forecaster(settings, 3))
    assert metrics.snapshot() is None
    metrics.planned(plan)
    snap = metrics.snapshot()
    assert snap is not None
    # FREE (monthly limit 1,000): 10 requests/min, 10 files a batch: 3 batches + the quota check
    assert snap.forecast_seconds == pytest.approx(4 / 10 * 60)
    empty = dataclasses.replace(plan, items=0, histogram={})
    metrics.planned(empty)
    snap = metrics.snapshot()
    assert snap is not None and snap.forecast_seconds is None
