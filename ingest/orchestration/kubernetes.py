"""The Kubernetes launcher: the workers of a run as one Indexed Job, the run's coordinator
being this process (the chart's coordinator Job, or a laptop with a kubeconfig).

The run id defaults to the coordinator's own Job name, which stays the same across pod
restarts and differs for each CronJob run. The worker Job is found by its run-id label
before anything is created, so a restarted coordinator adopts it. Stopping the watch
(SIGTERM: the coordinator pod is evicted or drained) leaves the worker Job running: it
is the run; the next coordinator pod adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Callable, Collection

from ingest.errors import ConfigError
from ingest.launch.jobspec import (
    RUN_ID_LABEL,
    CoordinatorPodInfo,
    Manifest,
    progress_line,
    run_label,
)
from ingest.launch.kubernetes import KubernetesLauncher
from ingest.launch.semantics import Verdict
from ingest.state.records import RunPlan

log = logging.getLogger(__name__)

Observer = Callable[[Manifest], None]
RUN_ID_MAX = 40  # the planner's limit on run ids (ingest/planning/runid.py)


def run_id_for_job(name: str) -> str:
    """The run id of a coordinator Job named ``name``: the name itself when it is a short
    DNS label (run ids name Kubernetes objects, at most 40 characters), else its first
    29 characters and a hash, so a long release or CronJob name still gives a stable id."""
    if len(name) <= RUN_ID_MAX and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    head = re.sub(r"[^a-z0-9]+", "-", name.lower())[: RUN_ID_MAX - 11].strip("-")
    return f"{head}-{digest}" if head else digest


class KubernetesJob:
    """:class:`ingest.orchestration.flow.Launcher` for a worker Indexed Job.

    ``env`` stands in for the process environment when reading the coordinator's own pod
    (POD_NAME/POD_NAMESPACE); ``observer`` sees every new state of the worker Job (tests
    drive lifecycles with it).
    """

    def __init__(
        self,
        launcher: KubernetesLauncher,
        state_uri: str,
        *,
        env: dict[str, str] | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.launcher = launcher
        self.state_uri = state_uri
        self.env = env
        self.observer = observer
        self.job: Manifest | None = None
        self._info: CoordinatorPodInfo | None = None
        self._run_id = ""

    async def resolve_run_id(self, run_id: str | None) -> str | None:
        self._info = info = await self.launcher.pod_info(self.env)
        run_id = run_id or (run_id_for_job(info.owner.name) if info.owner else None)
        if not run_id:
            raise ConfigError(
                "no run id: pass --run-id, or run the coordinator as a Kubernetes Job "
                "(the chart does), whose name becomes the run id"
            )
        self._run_id = run_id
        return run_id

    @property
    def info(self) -> CoordinatorPodInfo:
        if self._info is None:
            raise RuntimeError("resolve_run_id() first")
        return self._info

    async def attach(self, run_id: str) -> bool:
        # A Job this coordinator cannot continue (a failed run being rerun, a release
        # reinstalled or upgraded with other worker values) is retired here: None.
        self.job = await self.launcher.reusable(self.info, run_id=run_id, state_uri=self.state_uri)
        if self.job is not None:
            log.info("run %s: found its worker Job %s", run_id, self.job["metadata"]["name"])
        return self.job is not None

    async def launch(self, plan: RunPlan, complete: Collection[int]) -> None:
        # Complete shards still get a pod: it finds its checkpoint complete and exits 0.
        self.job = await self.launcher.create(
            self.info, run_id=plan.run_id, state_uri=self.state_uri, shards=plan.shards
        )

    async def watch(self, stop: asyncio.Event) -> Verdict | None:
        if self.job is None:
            raise RuntimeError("watch() before launch() or attach()")
        waiting = asyncio.create_task(self.launcher.wait(self.job, self._on_change), name="watch")
        stopping = asyncio.create_task(stop.wait(), name="watch-stop")
        try:
            await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                return waiting.result()
            return None
        finally:
            for task in (waiting, stopping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _on_change(self, state: Manifest) -> None:
        log.info("run %s: %s", self._run_id, progress_line(state))
        if self.observer is not None:
            self.observer(state)

    def stopped(self, run_id: str, signum: int) -> str:
        name = self.job["metadata"]["name"] if self.job else "?"
        return (
            f"run {run_id}: stopped watching; the worker Job {name} keeps running, and the "
            "next coordinator adopts it"
        )

    def failure_hints(self, run_id: str, verdict: Verdict) -> list[str]:
        return [
            f"run {run_id}: to retry the failed shards from their checkpoints, run a new "
            "coordinator Job with the same run id (helm upgrade --reuse-values); it replaces "
            f"the failed worker Job (label {RUN_ID_LABEL}={run_label(run_id)}). Or plan a new "
            f"run from the failures: aion-ingest run --retry-failed {run_id}"
        ]
