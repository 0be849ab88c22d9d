"""The local launcher: the workers of a run as processes on this machine.

One ``aion-ingest work`` process per shard index with ``JOB_COMPLETION_INDEX`` set, at
most ``parallelism`` at a time, under the Indexed Job model
(:class:`ingest.launch.local.LocalLauncher`). Their logs go to files under the user's
data directory. Stopping the watch sends them SIGTERM; they flush their checkpoints, and
``aion-ingest resume`` goes on from there.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Collection, Mapping
from pathlib import Path

from ingest.launch.forkserver import ForkServer
from ingest.launch.local import LocalLauncher
from ingest.launch.semantics import JobSpec, Verdict
from ingest.metrics.relay import WorkerRelay
from ingest.orchestration.flow import Say
from ingest.orchestration.worker_logs import last_error_line
from ingest.settings import KubernetesSettings
from ingest.state.records import RunPlan


def data_dir() -> Path:
    """The user's data directory for aion-ingest (XDG_DATA_HOME, else ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "aion-ingest"


def default_state_uri() -> str:
    return (data_dir() / "state").as_uri()


# What ``aion-ingest work`` imports before its first request, for the fork server.
WORKER_MODULES = ["ingest.cli", "ingest.worker.run", "ingest.sources.manifest"]


def worker_command(run_id: str, state_uri: str) -> list[str]:
    return [sys.executable, "-m", "ingest", "work", "--run-id", run_id, "--state", state_uri]


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (a worker binds it a moment later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalProcesses:
    """:class:`ingest.orchestration.flow.Launcher` for worker processes on this machine.

    ``job`` gives the per-index retry rules (the same settings as the Kubernetes Job's);
    ``env_overrides`` are the command line's settings, as INGEST_* variables, so the
    workers see them too. With a ``relay`` (``run --metrics-port``), each worker serves
    ``/metrics`` on a free port of its own, which the relay re-exports on the run's port.
    """

    def __init__(
        self,
        state_uri: str,
        *,
        parallelism: int,
        job: KubernetesSettings,
        env_overrides: Mapping[str, str],
        say: Say,
        relay: WorkerRelay | None = None,
    ) -> None:
        self.relay = relay
        self.state_uri = state_uri
        self.parallelism = parallelism
        self.job = job
        self.env_overrides = dict(env_overrides)
        self.say = say
        self.launcher: LocalLauncher | None = None
        self.fork_server: ForkServer | None = None

    async def warm(self) -> None:
        """Start the fork server (``ingest/launch/forkserver.py``) now, so that it imports
        the worker's modules while the run plans; Linux only (forking after some macOS
        system libraries is unsafe). Without it, each worker is a new process."""
        if sys.platform != "linux" or self.fork_server is not None:
            return
        env = dict(os.environ)
        env.update(self.env_overrides)
        self.fork_server = await ForkServer.start(WORKER_MODULES, env=env)

    async def aclose(self) -> None:
        """Stop the fork server (once its workers have ended: after the watch)."""
        if self.fork_server is not None:
            server, self.fork_server = self.fork_server, None
            await server.aclose()

    async def resolve_run_id(self, run_id: str | None) -> str | None:
        return run_id

    async def attach(self, run_id: str) -> bool:
        return False  # local workers die with the launcher: nothing to adopt

    async def launch(self, plan: RunPlan, complete: Collection[int]) -> None:
        parallelism = max(1, min(self.parallelism, plan.shards))
        env = dict(os.environ)
        env.update(self.env_overrides)
        env.update(INGEST_STATE=self.state_uri, INGEST_WORKER__PARALLEL_WORKERS=str(parallelism))
        env.setdefault("INGEST_LOG__FORMAT", "text")  # their logs go to files people read
        log_dir = data_dir() / "logs" / plan.run_id
        log_dir.mkdir(parents=True, exist_ok=True)
        spec = JobSpec(
            completions=plan.shards,
            parallelism=parallelism,
            backoff_limit_per_index=self.job.backoff_limit_per_index,
            max_failed_indexes=self.job.max_failed_indexes,
        )
        run_id, state_uri, relay = plan.run_id, self.state_uri, self.relay

        def command(index: int) -> list[str]:
            argv = worker_command(run_id, state_uri)
            if relay is not None:  # the flag wins over an inherited INGEST_METRICS__PORT
                port = free_port(relay.host)
                relay.add(index, port)  # a retried index replaces its port
                argv += ["--metrics-port", str(port)]
            return argv

        self.launcher = LocalLauncher(
            spec, command, env=env, log_dir=log_dir, fork_server=self.fork_server
        )
        self.launcher.mark_complete(complete)
        self.say(f"workers: {plan.shards} shards, {parallelism} at a time; their logs: {log_dir}")

    async def watch(self, stop: asyncio.Event) -> Verdict | None:
        if self.launcher is None:
            raise RuntimeError("watch() before launch()")
        outcome = await self.launcher.run(stop)
        return None if outcome.interrupted else outcome.verdict

    def stopped(self, run_id: str, signum: int) -> str:
        return (
            "interrupted: workers flushed their checkpoints. Resume with:\n"
            f"  aion-ingest resume {run_id} --state {self.state_uri}"
        )

    def failure_hints(self, run_id: str, verdict: Verdict) -> list[str]:
        hints = []
        if self.launcher is not None:
            for index in sorted(verdict.failed):
                path = self.launcher.log_path(index)
                cause = last_error_line(path) if path is not None else None
                said = f": {cause}" if cause else ""
                hints.append(f"index {index} failed{said}; its log: {path}")
        hints.append(
            f"once the cause is fixed: aion-ingest resume {run_id} --state {self.state_uri}"
        )
        return hints
