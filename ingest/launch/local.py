"""Local processes with Indexed Job semantics: ``aion-ingest run`` on one machine.

The same worker command a pod runs (``aion-ingest work``), started once per index with
``JOB_COMPLETION_INDEX`` set, at most ``parallelism`` at a time, retried and failed by the
shared model in :mod:`ingest.launch.semantics`, so a run behaves alike on a laptop and in
a cluster. A worker killed by a signal from outside (SIGTERM, exit 143) counts as a
disruption, as an evicted pod does: retried, not counted.

Workers run in their own session, so a Ctrl-C at the terminal reaches only the launcher,
which then sends SIGTERM to every worker and waits for them to flush their checkpoints
(exit 143) before it returns: the run can be resumed where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from ingest.launch.forkserver import ForkedProcess, ForkServer, runnable
from ingest.launch.semantics import IndexedJob, JobSpec, PolicyAction, Verdict

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LocalOutcome:
    """How the local Job ended: a verdict, or ``interrupted`` (stopped by the user)."""

    verdict: Verdict | None
    interrupted: bool
    attempts: dict[int, int]


class LocalLauncher:
    """Runs ``command(index)`` per index until the Job model gives its verdict."""

    def __init__(
        self,
        spec: JobSpec,
        command: Callable[[int], list[str]],
        *,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        grace_seconds: float = 30.0,
        fork_server: ForkServer | None = None,
    ) -> None:
        self.spec = spec
        self.fork_server = fork_server
        self.job = IndexedJob(spec)
        self.command = command
        self.env = dict(os.environ if env is None else env)
        self.log_dir = log_dir
        self.grace_seconds = grace_seconds
        self.attempts: dict[int, int] = {}
        self._procs: dict[int, asyncio.subprocess.Process | ForkedProcess] = {}

    def mark_complete(self, indexes: Collection[int]) -> None:
        """Indexes already complete (a resumed run): succeed them without a process."""
        for index in sorted(indexes):
            self.job.start(index)
            self.job.finish(index, 0)

    def log_path(self, index: int) -> Path | None:
        return self.log_dir / f"worker-{index:05d}.log" if self.log_dir else None

    async def _spawn(self, index: int) -> None:
        env = dict(self.env, JOB_COMPLETION_INDEX=str(index))
        self.attempts[index] = self.attempts.get(index, 0) + 1
        out_path = self.log_path(index)
        argv = self.command(index)
        proc: asyncio.subprocess.Process | ForkedProcess
        if self.fork_server is not None and out_path is not None and runnable(argv):
            proc = await self.fork_server.spawn(argv, env, str(out_path))
        else:
            # The child keeps its own descriptor; ours closes once it is started.
            out = out_path.open("ab") if out_path else None
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out or None,
                    stderr=out or None,
                    start_new_session=True,
                )
            finally:
                if out:
                    out.close()
        self._procs[index] = proc
        log.info(
            "started worker %d (attempt %d, pid %d)",
            index,
            self.attempts[index],
            proc.pid,
            extra={"index": index, "attempt": self.attempts[index]},
        )

    def _finish(self, index: int, returncode: int) -> None:
        code = 128 - returncode if returncode < 0 else returncode  # killed by a signal
        action = self.job.finish(index, code, disrupted=code == 143)
        level = logging.INFO if action is PolicyAction.SUCCEED else logging.WARNING
        log.log(
            level,
            "worker %d exited %d: %s",
            index,
            code,
            action.value,
            extra={"index": index, "exit_code": code, "action": action.value},
        )

    async def run(self, stop: asyncio.Event | None = None) -> LocalOutcome:
        """Run until the verdict, or until ``stop`` is set (then SIGTERM and wait)."""
        stop = stop or asyncio.Event()
        stopper = asyncio.create_task(stop.wait(), name="launcher-stop")
        waits: dict[asyncio.Task[int], int] = {}
        try:
            while self.job.verdict is None and not stop.is_set():
                for index in self.job.startable():
                    await self._spawn(index)
                    self.job.start(index)
                    task = asyncio.create_task(self._procs[index].wait(), name=f"wait-{index}")
                    waits[task] = index
                if not waits:  # nothing runs and nothing can start: the model is stuck
                    raise RuntimeError("no worker runs and none can start, yet no verdict")
                done, _ = await asyncio.wait([*waits, stopper], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is stopper:
                        continue
                    index = waits.pop(task)
                    self._procs.pop(index, None)
                    self._finish(index, task.result())
            interrupted = self.job.verdict is None
            if waits:
                await self._terminate(waits)
            return LocalOutcome(self.job.verdict, interrupted, dict(self.attempts))
        finally:
            stopper.cancel()
            for task in waits:
                task.cancel()
            for proc in self._procs.values():  # only after an error: never leave orphans
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

    async def _terminate(self, waits: dict[asyncio.Task[int], int]) -> None:
        """SIGTERM what still runs, SIGKILL after the grace period, record their exits."""
        for index in waits.values():
            with contextlib.suppress(ProcessLookupError):
                self._procs[index].send_signal(signal.SIGTERM)
        _, pending = await asyncio.wait(waits, timeout=self.grace_seconds)
        for task in pending:
            index = waits[task]
            log.warning(
                "worker %d did not stop within %.0fs: killing it", index, self.grace_seconds
            )
            with contextlib.suppress(ProcessLookupError):
                self._procs[index].kill()
        if pending:
            await asyncio.wait(pending)
        for task, index in list(waits.items()):
            self._procs.pop(index, None)
            self._finish(index, task.result())
        waits.clear()
