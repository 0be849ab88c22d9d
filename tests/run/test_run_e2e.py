"""`aion-ingest run`, `resume`, `status`, `report`: the whole pipeline as a user runs it.

Real parts only: the CLI in subprocesses, worker processes, a folder source, a folder
state store and the sandbox with faults on.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from ingest.state.records import Checkpoint
from tests.run.helpers import make_source, run_env, start, wait_until, worker_pids

pytestmark = pytest.mark.timeout(240)


def _report_rows(state: Path, run_id: str) -> list[dict[str, str]]:
    text = (state / "runs" / run_id / "report.csv").read_text()
    return list(csv.DictReader(io.StringIO(text)))


def _checkpointed(state: Path, run_id: str) -> int:
    """Ordinals the shards' checkpoints say are done, read straight from the folder."""
    total = 0
    for path in (state / "runs" / run_id / "checkpoints").glob("*.json"):
        with contextlib.suppress(ValueError, OSError):  # mid-rename: read it next time
            total += Checkpoint.from_bytes(path.read_bytes()).count()
    return total


def _assert_each_supported_file_once(sandbox: Any, n: int) -> None:
    names = collections.Counter(f["filename"] for f in sandbox.files())
    assert len(names) == n, f"{len(names)} distinct files on the server, expected {n}"
    assert max(names.values()) == 1, [k for k, v in names.items() if v > 1]


@pytest.mark.slow
def test_run_with_faults_and_a_killed_worker_completes_exactly_once(
    tmp_path: Path, sandbox: Any
) -> None:
    n = 240
    make_source(tmp_path / "src", n)
    state = tmp_path / "state"
    sandbox.set_faults(error_rate=0.15, drop_rate=0.03, latency_ms=15, seed=11)
    env = run_env(tmp_path, sandbox, INGEST_WORKER__CONCURRENCY="2")
    run_id = "e2e-kill"
    proc = start(
        ["run", str(tmp_path / "src"), "--state", f"file://{state}", "--run-id", run_id,
         "--shards", "3", "-p", "2"],
        env,
    )  # fmt: skip
    try:
        wait_until(lambda: len(sandbox.files()) > 20)
        victims = worker_pids(run_id)
        assert victims, "no worker process found to kill"
        os.kill(victims[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=200)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "Complete: 3/3 indexes complete" in err
    assert "exited 137" in err  # the killed worker was seen and its index retried

    rows = _report_rows(state, run_id)
    assert len(rows) == n  # the unsupported clip was filtered before planning
    assert len({r["key"] for r in rows}) == n
    assert {r["outcome"] for r in rows} <= {"uploaded", "skipped_duplicate"}
    _assert_each_supported_file_once(sandbox, n)
    report = json.loads((state / "runs" / run_id / "report.json").read_text())
    assert report["filtered_by_reason"] == {"unsupported_format": 1}
    assert report["failed_indexes"] == []
    assert sandbox.api_key not in out + err


@pytest.mark.slow
def test_interrupted_run_resumes_and_status_tells_where_it_is(tmp_path: Path, sandbox: Any) -> None:
    n = 150
    make_source(tmp_path / "src", n, seed=2)
    state = tmp_path / "state"
    # Slow enough that the run cannot finish between the checkpoint we wait for and the
    # SIGINT: two files a request, one request at a time, 100 ms each (~4 s a shard).
    sandbox.set_faults(latency_ms=100, seed=3)
    env = run_env(tmp_path, sandbox, INGEST_WORKER__CONCURRENCY="1", INGEST_WORKER__BATCH_FILES="2")
    run_id = "e2e-resume"
    proc = start(
        ["run", str(tmp_path / "src"), "--state", f"file://{state}", "--run-id", run_id,
         "--shards", "2", "-p", "2"],
        env,
    )  # fmt: skip
    try:
        wait_until(lambda: _checkpointed(state, run_id) >= 20)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert f"aion-ingest resume {run_id}" in err
    assert not worker_pids(run_id)  # every worker stopped with the launcher

    status = start(["status", run_id, "--state", f"file://{state}", "--json"], env)
    sout, serr = status.communicate(timeout=60)
    assert status.returncode == 0, serr
    doc = json.loads(sout)
    assert 20 <= doc["done"] < n  # the flushed checkpoints say how far it got
    assert doc["forecast_seconds"] > 0  # the plan's forecast, beside the measured rate
    states = [s["state"] for s in doc["shards"]]
    assert "in progress" in states or "complete" in states
    assert set(states) <= {"in progress", "complete", "not started"}

    sandbox.set_faults(latency_ms=0)
    resume = start(["resume", run_id, "--state", f"file://{state}"], env)
    _, rerr = resume.communicate(timeout=200)
    assert resume.returncode == 0, rerr[-3000:]
    rows = _report_rows(state, run_id)
    assert len(rows) == n
    assert {r["outcome"] for r in rows} <= {"uploaded", "skipped_duplicate"}
    _assert_each_supported_file_once(sandbox, n)


def test_failed_items_can_be_retried_as_a_new_run(tmp_path: Path, sandbox: Any) -> None:
    src = tmp_path / "src"
    make_source(src, 10, seed=4)
    (src / "fake.jpg").write_bytes(b"this is not a jpeg at all")  # the API answers 415
    state = tmp_path / "state"
    env = run_env(tmp_path, sandbox)
    first = start(["run", str(src), "--state", f"file://{state}", "--run-id", "r-first"], env)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-3000:]  # an item failed; the run itself completed
    rows = _report_rows(state, "r-first")
    failed = [r for r in rows if r["outcome"] == "failed"]
    assert [r["key"] for r in failed] == ["fake.jpg"]
    assert failed[0]["reason"], failed[0]  # the API said why (a batch rejection has no status)

    report = start(["report", "r-first", "--state", f"file://{state}", "--failed-only"], env)
    _, rerr = report.communicate(timeout=60)
    assert report.returncode == 0, rerr
    failed_csv = (state / "runs" / "r-first" / "failed.csv").read_text()
    assert len(list(csv.DictReader(io.StringIO(failed_csv)))) == 1

    # Content that is not what its name says can never succeed: left out unless --all.
    args = ["run", "--retry-failed", "r-first", "--state", f"file://{state}", "--run-id"]
    retry = start([*args, "r-retry"], env)
    _, err = retry.communicate(timeout=120)
    assert retry.returncode == 0, err[-3000:]
    assert "leaving out 1 failures a retry cannot fix (rejected_in_batch 1); --all" in err
    assert "nothing to retry" in err
    assert not (state / "runs" / "r-retry").exists()

    retry = start([*args, "r-retry", "--all"], env)
    _, err = retry.communicate(timeout=120)
    assert retry.returncode == 0, err[-3000:]
    assert [r["key"] for r in _report_rows(state, "r-retry")] == ["fake.jpg"]


def test_list_mode_run_resolves_every_image_id_in_its_report_step(
    tmp_path: Path, sandbox: Any
) -> None:
    """batch_results=list (the default): the workers leave ids pending; the report step of
    ``run`` (orchestration/steps.py) resolves them before the report is written."""
    n = 30
    make_source(tmp_path / "src", n, seed=5)
    state = tmp_path / "state"
    env = run_env(
        tmp_path, sandbox, INGEST_WORKER__BATCH_RESULTS="list", INGEST_WORKER__BATCH_FILES="10"
    )
    proc = start(
        ["run", str(tmp_path / "src"), "--state", f"file://{state}", "--run-id", "r-list",
         "--shards", "2", "-p", "2"],
        env,
    )  # fmt: skip
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    # batches of more than 5 files leave their ids pending (smaller ones answer inline);
    # the report step's lines are the run's result: on stdout
    (ids_line,) = [line for line in out.splitlines() if line.startswith("image ids: ")]
    assert not ids_line.startswith("image ids: 0 ") and ids_line.endswith(", 0 not found")
    assert "  forecast  " in err  # the plan summary's forecast line
    rows = _report_rows(state, "r-list")
    assert {r["outcome"] for r in rows} == {"uploaded"}
    by_id = {f["id"]: f for f in sandbox.files()}
    assert sorted(r["image_id"] for r in rows) == sorted(by_id)
    for r in rows:
        assert by_id[r["image_id"]]["size_bytes"] == int(r["size"])


def test_run_without_source_or_state_plan_explains(tmp_path: Path, sandbox: Any) -> None:
    env = run_env(tmp_path, sandbox)
    proc = start(["run"], env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "no SOURCE given" in err
    assert "Traceback" not in err
    proc = start(["status", "nope", "--state", f"file://{tmp_path}/st"], env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "check the run id and --state" in err
