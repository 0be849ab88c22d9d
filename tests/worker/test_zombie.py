"""Two live workers on one index (a zombie pod and its replacement), as real processes.

The second claims the checkpoint; the first's next background flush meets StateConflict,
and it must stop at once (not upload the rest of its shard) with a clear line, exit
non-zero and leave the newer worker's checkpoint alone. The newer one finishes the shard
and every item is stored once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.worker.harness import Run, assert_exactly_once, wait_for

N_ITEMS = 600


def _worker_id(stderr: str) -> str:
    for line in stderr.splitlines():
        doc = json.loads(line) if line.startswith("{") else {}
        if doc.get("msg", "").startswith("claimed shard"):
            return str(doc["worker"])
    raise AssertionError(f"no claim logged:\n{stderr}")


def _progress(run: Run) -> tuple[int, int]:
    """(generation, ordinals done) of the checkpoint on disk."""
    cp = run.local_checkpoint()
    return (0, 0) if cp is None else (cp.generation, cp.count())


@pytest.mark.timeout(120)
def test_a_second_worker_on_the_same_index_stops_the_first_promptly(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    sandbox = sandbox_factory(faults={"latency_ms": 25})
    src = tmp_path / "src"
    src.mkdir()
    for i in range(N_ITEMS):
        (src / f"z-{i:04d}.txt").write_text(f"zombie test item {i}\n" * 8)
    # slow on purpose: one request at a time, 5 files each, so the shard takes seconds
    run = Run.create(
        tmp_path,
        sandbox,
        INGEST_WORKER__CONCURRENCY="1",
        INGEST_WORKER__BATCH_FILES="5",
        INGEST_WORKER__FLUSH_SECONDS="0.1",
    )
    run.plan(str(src))
    stored = sandbox.app.store.files
    try:
        first = run.start()
        wait_for("the first worker's first flush", lambda: _progress(run) > (1, 0))
        second = run.start()
        wait_for("the second worker's claim", lambda: _progress(run) >= (2, 0))
        claimed_at = time.monotonic()
        assert first.wait(timeout=30) == 1
        stopped_after = time.monotonic() - claimed_at
        # the zombie stopped uploading: the shard was far from done when it exited
        assert len(stored) < N_ITEMS
        assert stopped_after < 5.0, stopped_after
        err = first.stderr()
        assert "stale" in err and "another worker" in err
        assert "Traceback" not in err
        cp = run.local_checkpoint()
        assert cp is not None and cp.generation == 2
        assert cp.worker_id == _worker_id(second.stderr()) != _worker_id(err)
        assert second.wait() == 0, second.stderr()
    finally:
        run.stop_all()
    assert_exactly_once(run, sandbox, {f"z-{i:04d}.txt" for i in range(N_ITEMS)})
