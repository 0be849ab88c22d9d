"""`helm uninstall` mid-run, then `helm install` with the same run id: the run resumes.

kmock is the API server (real client), the test plays Helm, the garbage collector (late)
and the kubelet, which runs each index's container args as a real `aion-ingest work`
process against the sandbox and a folder state store. The steps between are the
coordinator's: find the run's worker Job (``reusable``), plan (read back), create.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import kmock
import pytest

from ingest.launch.jobspec import Manifest
from ingest.launch.kubernetes import Clients, KubernetesLauncher
from ingest.planning.planner import plan_source
from ingest.report import build_report
from ingest.settings import Settings, load_settings
from ingest.state import open_state
from tests.launch.test_rerun import RUN, Release, assign_uid
from tests.run.helpers import make_source, run_env


async def run_index(job: Manifest, index: int, env: dict[str, str]) -> int:
    """The kubelet: one pod of the Job, as a local process."""
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", *args,
        env=dict(env, JOB_COMPLETION_INDEX=str(index)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await proc.wait()


async def coordinator_launch(
    clients: Clients, release: Release, settings: Settings, source: str
) -> tuple[str, Manifest]:
    """The coordinator's launch steps; the plan's status and the worker Job to watch."""
    launcher = KubernetesLauncher(clients, settings.kubernetes)
    info = await launcher.pod_info(release.env())
    assert settings.state
    job = await launcher.reusable(info, run_id=RUN, state_uri=settings.state)
    assert job is None  # the old release's Job is not the new release's to watch
    async with open_state(settings.state, settings) as store:
        outcome = await plan_source(source, settings, store, run_id=RUN)
    job = await launcher.create(
        info, run_id=RUN, state_uri=settings.state, shards=outcome.plan.shards
    )
    await assign_uid(clients, job)
    return outcome.status, job


@pytest.mark.timeout(180)
async def test_uninstall_mid_run_then_install_resumes(
    kmock: kmock.KubernetesEmulator,
    tmp_path: Path,
    sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for resource in ("batch/v1/jobs", "v1/pods", "v1/configmaps"):
        kmock.resources[resource] = {"namespaced": True}
    clients = Clients.for_host(str(kmock.url))
    n = 30
    make_source(tmp_path / "src", n, seed=11)
    source = str(tmp_path / "src")
    env = run_env(tmp_path, sandbox)
    for name, value in env.items():
        if name.startswith(("INGEST_", "AIONVISION_")):
            monkeypatch.setenv(name, value)
    settings = load_settings(
        state=f"file://{tmp_path}/state", kubernetes={"watch_seconds": 5}, plan={"shards": 2}
    )

    old = Release(1, "c0000000-0000-4000-8000-0000000000a1")
    await old.install(clients)
    status, job = await coordinator_launch(clients, old, settings, source)
    assert status == "planned"
    assert await run_index(job, 0, dict(os.environ)) == 0  # shard 0 done, shard 1 not begun
    after_first = len(sandbox.files())
    assert 0 < after_first < n

    await old.uninstall(clients)  # the worker Job stays: the garbage collector is late
    new = Release(1, "c0000000-0000-4000-8000-0000000000a2")
    await new.install(clients)
    status, job = await coordinator_launch(clients, new, settings, source)
    assert status == "existing"  # the plan is read back, not redone
    assert job["metadata"]["ownerReferences"][0]["uid"] == new.config_map_uid
    assert [await run_index(job, i, dict(os.environ)) for i in range(2)] == [0, 0]

    assert len(sandbox.files()) == n
    async with open_state(settings.state, settings) as store:
        report = await build_report(store, RUN, verdict="Complete", failed_indexes=[])
    outcomes = {k: v for k, v in report.by_outcome.items() if v}
    assert outcomes == {"uploaded": n}  # shard 0 was not sent again (no skipped_duplicate)
    assert report.complete_indexes == [0, 1]
