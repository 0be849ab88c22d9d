"""The local launcher: real worker processes under the shared Indexed Job model."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ingest.launch.forkserver import ForkServer
from ingest.launch.local import LocalLauncher
from ingest.launch.semantics import JobSpec, VerdictKind

# A stand-in worker: reads its index, counts its attempts in a file, and exits with the
# code the test scripted for that (index, attempt); "wait" blocks until SIGTERM (143);
# "3^0" exits 3 once index 0 is ready (its SIGTERM handler set: no race with the test).
WORKER = r"""
import os, signal, sys, time
from pathlib import Path
index = int(os.environ["JOB_COMPLETION_INDEX"])
root = Path(sys.argv[1])
attempts = root / f"attempts-{index}"
n = len(attempts.read_text()) if attempts.exists() else 0
attempts.write_text("x" * (n + 1))
script = sys.argv[2].split(";")[index].split(",")
code = script[min(n, len(script) - 1)]
if code == "wait":
    def on_term(*_):
        (root / f"flushed-{index}").write_text("yes")
        sys.exit(143)
    signal.signal(signal.SIGTERM, on_term)
    (root / f"ready-{index}").write_text("")
    while True:
        signal.pause()
code, _, after = code.partition("^")
while after and not (root / f"ready-{after}").exists():
    time.sleep(0.01)
sys.exit(int(code))
"""


@pytest.fixture(params=["exec", "fork"])
async def fork_server(request: pytest.FixtureRequest) -> AsyncIterator[ForkServer | None]:
    """Every test twice: workers as new processes, and as forks of the fork server (the
    same semantics: exit codes, retries, SIGTERM and the flush)."""
    if request.param == "exec":
        yield None
        return
    server = await ForkServer.start([])
    yield server
    await server.aclose()


def _launcher(
    tmp_path: Path, fork_server: ForkServer | None, script: str, **spec: int
) -> LocalLauncher:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    shards = len(script.split(";"))
    return LocalLauncher(
        JobSpec(completions=shards, **spec),
        lambda index: [sys.executable, str(worker), str(tmp_path), script],
        log_dir=tmp_path,
        grace_seconds=10,
        fork_server=fork_server,
    )


def _attempts(tmp_path: Path, index: int) -> int:
    path = tmp_path / f"attempts-{index}"
    return len(path.read_text()) if path.exists() else 0


async def test_all_indexes_succeed(tmp_path: Path, fork_server: ForkServer | None) -> None:
    outcome = await _launcher(tmp_path, fork_server, "0;0;0;0", parallelism=2).run()
    assert outcome.verdict is not None
    assert outcome.verdict.kind is VerdictKind.COMPLETE
    assert outcome.verdict.exit_code == 0
    assert [_attempts(tmp_path, i) for i in range(4)] == [1, 1, 1, 1]
    assert not outcome.interrupted


async def test_transient_failure_is_retried_up_to_the_backoff_limit(
    tmp_path: Path, fork_server: ForkServer | None
) -> None:
    # index 0 fails twice then succeeds; index 1 always fails (limit 2 → 3 attempts).
    launcher = _launcher(tmp_path, fork_server, "1,1,0;1", parallelism=2, backoff_limit_per_index=2)
    outcome = await launcher.run()
    assert outcome.verdict is not None
    assert outcome.verdict.kind is VerdictKind.FAILED_INDEXES
    assert outcome.verdict.succeeded == {0}
    assert outcome.verdict.failed == {1}
    assert outcome.verdict.exit_code == 4
    assert (_attempts(tmp_path, 0), _attempts(tmp_path, 1)) == (3, 3)


async def test_fatal_exit_fails_the_job_and_stops_the_others(
    tmp_path: Path, fork_server: ForkServer | None
) -> None:
    launcher = _launcher(tmp_path, fork_server, "wait;3^0", parallelism=2)
    outcome = await launcher.run()
    assert outcome.verdict is not None
    assert outcome.verdict.kind is VerdictKind.FAILED_BY_POLICY
    assert outcome.verdict.exit_code == 3
    # The waiting worker was told to stop (SIGTERM) and flushed before exiting.
    assert (tmp_path / "flushed-0").read_text() == "yes"


async def test_disrupted_worker_is_retried_without_counting(
    tmp_path: Path, fork_server: ForkServer | None
) -> None:
    # 143 (SIGTERM from outside) twice, then success, with no retries allowed at all.
    launcher = _launcher(tmp_path, fork_server, "143,143,0", backoff_limit_per_index=0)
    outcome = await launcher.run()
    assert outcome.verdict is not None
    assert outcome.verdict.kind is VerdictKind.COMPLETE
    assert _attempts(tmp_path, 0) == 3


async def test_stop_sends_sigterm_and_waits_for_the_flush(
    tmp_path: Path, fork_server: ForkServer | None
) -> None:
    launcher = _launcher(tmp_path, fork_server, "wait;wait", parallelism=2)
    stop = asyncio.Event()
    task = asyncio.create_task(launcher.run(stop))
    # The workers are other processes: their readiness files are the only event there is.
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    stop.set()
    outcome = await task
    assert outcome.interrupted
    assert outcome.verdict is None
    assert all((tmp_path / f"flushed-{i}").read_text() == "yes" for i in range(2))


async def test_resumed_run_skips_complete_indexes(
    tmp_path: Path, fork_server: ForkServer | None
) -> None:
    launcher = _launcher(tmp_path, fork_server, "0;0;0", parallelism=1)
    launcher.mark_complete({0, 2})
    outcome = await launcher.run()
    assert outcome.verdict is not None
    assert outcome.verdict.kind is VerdictKind.COMPLETE
    assert [_attempts(tmp_path, i) for i in range(3)] == [0, 1, 0]


@pytest.mark.parametrize("code", [2, 3])
async def test_usage_and_fatal_codes_fail_by_policy(
    tmp_path: Path, fork_server: ForkServer | None, code: int
) -> None:
    outcome = await _launcher(tmp_path, fork_server, f"{code}").run()
    assert outcome.verdict is not None
    assert outcome.verdict.kind is VerdictKind.FAILED_BY_POLICY
    assert _attempts(tmp_path, 0) == 1
