"""The run's progress model: read from shard statuses, rates from a window, one view."""

from __future__ import annotations

import io
import logging

import pytest

from ingest.orchestration.progress import ProgressView, RunTracker
from ingest.report import ShardStatus
from tests.orchestration.test_coordinator import fake_plan
from tests.worker.memstore import MemoryStateStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def statuses(*done: int) -> tuple[ShardStatus, ...]:
    # fake_plan: 10 items and 100 bytes a shard
    return tuple(
        ShardStatus(i, 10, 100, d, "w" if d else "", 1 if d else 0, "") for i, d in enumerate(done)
    )


def test_progress_counts_objects_bytes_shards_and_excludes_work_done_before() -> None:
    clock = Clock()
    tracker = RunTracker(MemoryStateStore(), fake_plan("r1", 3), clock=clock)
    first = tracker.record(statuses(10, 0, 0))  # a resumed run: shard 0 was done before
    assert first.objects_per_second == 0.0
    clock.now = 10.0
    p = tracker.record(statuses(10, 5, 5))
    assert tracker.latest is p
    assert (p.done_objects, p.planned_objects) == (20, 30)
    assert (p.done_bytes, p.planned_bytes) == (200, 300)
    assert p.objects_per_second == pytest.approx(1.0)  # 10 objects in 10 s, not 20
    assert p.eta_seconds == pytest.approx(10.0)
    assert p.shard_states() == {"complete": 1, "in progress": 2, "not started": 0}
    assert "20/30 objects (66.7%)" in p.text()
    assert "shards 1/3 complete, 2 in progress" in p.text()
    assert p.fields()["eta_seconds"] == 10.0


def test_view_draws_a_bar_on_a_terminal_and_logs_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = RunTracker(MemoryStateStore(), fake_plan("r1", 2), clock=Clock())
    p = tracker.record(statuses(10, 0))
    out = io.StringIO()
    view = ProgressView(out, tty=True)
    view.show(p)
    view.end()
    assert out.getvalue().startswith("\r[############------------] 10/20 objects (50.0%)")
    assert out.getvalue().endswith("\n")

    caplog.set_level(logging.INFO, logger="ingest.progress")
    ProgressView(io.StringIO(), tty=False).show(p)
    (record,) = [r for r in caplog.records if r.name == "ingest.progress"]
    assert "run r1: progress: 10/20 objects" in record.getMessage()
    assert vars(record)["shards"] == {"complete": 1, "in progress": 0, "not started": 1}
