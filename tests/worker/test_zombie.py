"""Two live workers on one index (a zombie pod and its replacement), as real processes.

The second claims the checkpoint; the first's next flush meets StateConflict, and it must
stop at once (not upload the rest of its shard) with a clear line, exit non-zero and leave
the newer worker's checkpoint alone. The newer one finishes the shard and every item is
stored once.

"At once" is counted in uploads, not seconds (a loaded machine stretches seconds): once
the second has claimed, it is frozen (SIGSTOP), so everything the sandbox stores until the
first exits is the zombie's. A flush comes at least every ``flush_items`` outcomes, so a
prompt zombie adds about that many, plus what it sends while that flush is written; one
that ignored the conflict would upload the whole rest of its shard.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.worker.harness import Run, Worker, assert_exactly_once, wait_for

N_ITEMS = 600
FLUSH_ITEMS = 20


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


def _replacement(run: Run, attempts: int = 10) -> Worker:
    """A second worker that holds the claim (generation 2).

    A claim reads the checkpoint and writes it back; when the first worker's flush lands in
    between, the CAS refuses the claim and the newcomer stops as stale (two pods racing:
    the loser exits 1 and the Job starts another). So does this, until one claim holds.
    """
    for _ in range(attempts):
        w = run.start()
        wait_for("the second worker's claim", lambda w=w: _progress(run) >= (2, 0) or not w.alive())
        if _progress(run) >= (2, 0):
            return w
        assert w.wait() == 1 and "stale" in w.stderr(), w.stderr()
    raise AssertionError(f"no claim held in {attempts} starts")


@pytest.mark.timeout(120)
def test_a_second_worker_on_the_same_index_stops_the_first_promptly(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    sandbox = sandbox_factory(faults={"latency_ms": 25})
    src = tmp_path / "src"
    src.mkdir()
    for i in range(N_ITEMS):
        (src / f"z-{i:04d}.txt").write_text(f"zombie test item {i}\n" * 8)
    # slow on purpose: one request at a time, 5 files each, at most 6 requests/s, so the
    # shard takes 20 s and most of it is left when the second worker has started
    run = Run.create(
        tmp_path,
        sandbox,
        INGEST_WORKER__CONCURRENCY="1",
        INGEST_WORKER__BATCH_FILES="5",
        INGEST_WORKER__REQUESTS_PER_MINUTE="360",
        INGEST_WORKER__FLUSH_SECONDS="1",
        INGEST_WORKER__FLUSH_ITEMS=str(FLUSH_ITEMS),
        # a worker frozen inside a checkpoint write leaves its lock; break it soon
        INGEST_STORE__LOCK_STALE_SECONDS="1",
    )
    run.plan(str(src))
    stored = sandbox.app.store.files
    second = None
    try:
        first = run.start()
        wait_for("the first worker's first flush", lambda: _progress(run) > (1, 0))
        second = _replacement(run)
        second.send(signal.SIGSTOP)
        claimed_with = len(stored)
        assert first.wait(timeout=60) == 1, first.stderr()
        # the zombie stopped within a flush or two of the claim, far from its shard's end
        zombie_uploads, left = len(stored) - claimed_with, N_ITEMS - claimed_with
        assert zombie_uploads < left // 2, (zombie_uploads, left)
        err = first.stderr()
        assert "stale" in err and "another worker" in err
        assert "Traceback" not in err
        cp = run.local_checkpoint()
        assert cp is not None and cp.generation == 2
        second.send(signal.SIGCONT)
        assert second.wait() == 0, second.stderr()
        # (read only now: the second may have been frozen before it logged its claim)
        assert cp.worker_id == _worker_id(second.stderr()) != _worker_id(err)
    finally:
        if second is not None:
            second.send(signal.SIGCONT)
        run.stop_all()
    assert_exactly_once(run, sandbox, {f"z-{i:04d}.txt" for i in range(N_ITEMS)})
