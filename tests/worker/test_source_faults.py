"""Source files that change under the worker: each fails alone, never its neighbours, and
never hangs or tears an upload (issue 13, points 7, 8 and 12)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest.demo.samples import make_jpeg
from ingest.items import FailureCode, Outcome
from tests.worker.harness import REPO, Run, Worker, wait_for


def _write(src: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(data)


@pytest.mark.timeout(120)
def test_an_empty_file_gone_before_its_batch_fails_alone(tmp_path: Path, sandbox: Any) -> None:
    rng = random.Random(7)
    files = {"a-empty.jpg": b""} | {f"b{i}.jpg": make_jpeg(rng, 1500 + i) for i in range(6)}
    src = tmp_path / "src"
    _write(src, files)
    run = Run.create(tmp_path, sandbox)
    run.plan(str(src))
    (src / "a-empty.jpg").unlink()  # 0 bytes planned, gone when its batch is sent
    code, err = run.work()
    assert code == 0, err[-3000:]
    results = {r.key: r for r in run.results().values()}
    assert results["a-empty.jpg"].outcome is Outcome.FAILED
    assert "gone" in (results["a-empty.jpg"].reason or "")
    assert results["a-empty.jpg"].code == FailureCode.SOURCE_GONE
    others = {k: r.outcome for k, r in results.items() if k != "a-empty.jpg"}
    assert others == {k: Outcome.UPLOADED for k in files if k != "a-empty.jpg"}
    assert {f["filename"] for f in sandbox.files()} == set(others)


@pytest.mark.timeout(120)
def test_a_fifo_in_place_of_a_planned_file_fails_alone(tmp_path: Path, sandbox: Any) -> None:
    rng = random.Random(8)
    files = {f"f{i}.jpg": make_jpeg(rng, 1500 + i) for i in range(4)}
    src = tmp_path / "src"
    _write(src, files)
    run = Run.create(tmp_path, sandbox)
    run.plan(str(src))
    (src / "f1.jpg").unlink()
    os.mkfifo(src / "f1.jpg")  # nobody ever writes: opening it for reading would block
    code, err = run.work(timeout=60)
    assert code == 0, err[-3000:]
    results = {r.key: r for r in run.results().values()}
    assert results["f1.jpg"].outcome is Outcome.FAILED
    assert "not a regular file" in (results["f1.jpg"].reason or "")
    assert results["f1.jpg"].code == FailureCode.SOURCE_UNREADABLE
    assert {k for k, r in results.items() if r.outcome is Outcome.UPLOADED} == set(files) - {
        "f1.jpg"
    }


# A worker whose reads never return, whose flush never returns, or whose file is rewritten
# while read: the script patches the one function, then runs the real command line.
_PATCHED = """
import asyncio, sys, threading
import ingest.sources.local as local
import ingest.worker.results as results

def stuck_read(f, n):
    print("STUCK-READ", file=sys.stderr, flush=True)
    threading.Event().wait()

async def stuck_flush(self):
    print("STUCK-FLUSH", file=sys.stderr, flush=True)
    await asyncio.Event().wait()

opened = local.LocalSource.open

class Rewriting:
    # the file's stream; once its first chunk is read, the file is rewritten in place

    def __init__(self, inner):
        self.inner, self.size = inner, inner.size

    async def __aiter__(self):
        first = True
        async for chunk in self.inner:
            if first:
                first = False
                with open(sys.argv[2], "r+b") as g:
                    g.write(b"torn" * 1000)  # same size
            yield chunk

    async def aclose(self):
        await self.inner.aclose()

async def rewriting_open(self, item):
    return Rewriting(await opened(self, item))

if sys.argv[1] == "read":
    local._read = stuck_read
elif sys.argv[1] == "rewrite":
    local.LocalSource.open = rewriting_open
else:
    results.ResultsWriter.flush = stuck_flush
from ingest.cli import main
raise SystemExit(main(sys.argv[3:]))
"""


def _patched_worker(
    tmp_path: Path, sandbox: Any, what: str, size: int = 5000, **env: str
) -> tuple[Run, Worker]:
    src = tmp_path / "src"
    _write(src, {"one.jpg": make_jpeg(random.Random(9), size)})
    run = Run.create(tmp_path, sandbox)
    run.plan(str(src))
    log = (tmp_path / f"stuck-{what}.stderr").open("wb")
    args = ["work", "--state", run.state, "--run-id", run.run_id, "--index", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _PATCHED, what, str(src / "one.jpg"), *args],
        env={**run.env, **env},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    return run, Worker(proc, Path(log.name), log)


@pytest.mark.timeout(120)
def test_a_read_that_never_returns_does_not_hold_a_worker_past_sigterm(
    tmp_path: Path, sandbox: Any
) -> None:
    # stop_seconds far away: the stuck read alone must not keep the process alive.
    _, w = _patched_worker(tmp_path, sandbox, "read", INGEST_WORKER__STOP_SECONDS="600")
    try:
        wait_for("the stuck read", lambda: "STUCK-READ" in w.stderr(), timeout=60)
        w.send(signal.SIGTERM)
        assert w.wait(timeout=20) == 143, w.stderr()[-3000:]
    finally:
        if w.alive():
            w.proc.kill()
            w.proc.wait()
    assert "Traceback" not in w.stderr()


@pytest.mark.timeout(120)
def test_a_worker_stuck_after_sigterm_exits_when_its_stop_seconds_run_out(
    tmp_path: Path, sandbox: Any
) -> None:
    _, w = _patched_worker(tmp_path, sandbox, "flush", INGEST_WORKER__STOP_SECONDS="1")
    try:
        wait_for("the stuck flush", lambda: "STUCK-FLUSH" in w.stderr(), timeout=60)
        w.send(signal.SIGTERM)
        assert w.wait(timeout=20) == 143, w.stderr()[-3000:]
    finally:
        if w.alive():
            w.proc.kill()
            w.proc.wait()
    assert "after SIGTERM: exiting now" in w.stderr()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("size", [600_000, 3 * 1024 * 1024])  # stream-batch, then stream
def test_a_file_rewritten_in_place_during_upload_is_not_sent(
    tmp_path: Path, sandbox: Any, size: int
) -> None:
    run, w = _patched_worker(tmp_path, sandbox, "rewrite", size=size)
    assert w.wait(timeout=60) == 0, w.stderr()[-3000:]
    (result,) = run.results().values()
    assert result.outcome is Outcome.FAILED, result
    assert "changed during upload" in (result.reason or "")
    assert result.code == FailureCode.SOURCE_CHANGED
    assert sandbox.files() == []
