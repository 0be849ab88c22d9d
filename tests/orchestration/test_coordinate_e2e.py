"""`aion-ingest coordinate` end to end: kmock as the API server, the test as the kubelet.

The coordinator plans a real folder source into a folder state store, creates the worker
Indexed Job in the emulator through the real client (found via a kubeconfig, as on a
laptop), and watches it. The test plays the kubelet: when the Job appears it runs each
index's container args as a real `aion-ingest` process against the sandbox, then posts
the Job's final status. The coordinator then merges the real report and exits 0.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from pathlib import Path
from typing import Any

import kmock
import pytest

from ingest.commands.coordinate import coordinate_command
from ingest.launch.jobspec import Manifest
from ingest.launch.kubernetes import Clients
from ingest.settings import load_settings
from tests.orchestration.test_coordinator import COORDINATOR_JOB, NS, POD, coordinator_pod
from tests.run.helpers import make_source, run_env


class Kubelet:
    """Runs the worker Job's pods as local processes the first time the Job is seen."""

    def __init__(self, clients: Clients, env: dict[str, str]) -> None:
        self.clients = clients
        self.env = env
        self.task: asyncio.Task[None] | None = None
        self.exit_codes: list[int] = []

    def __call__(self, job: Manifest) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self.run_pods(job))

    async def run_pods(self, job: Manifest) -> None:
        container = job["spec"]["template"]["spec"]["containers"][0]
        for index in range(job["spec"]["completions"]):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ingest", *container["args"],
                env=dict(self.env, JOB_COMPLETION_INDEX=str(index)),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            self.exit_codes.append(await proc.wait())
        done = ",".join(str(i) for i, code in enumerate(self.exit_codes) if code == 0)
        status = {
            "active": 0,
            "completedIndexes": done,
            "succeeded": len(done.split(",")),
            "conditions": [{"type": "Complete", "status": "True"}],
        }
        meta = job["metadata"]
        await asyncio.to_thread(
            self.clients.batch.patch_namespaced_job_status,
            meta["name"],
            meta["namespace"],
            {"status": status},
        )


@pytest.mark.timeout(180)
async def test_coordinate_plans_launches_watches_and_reports(
    kmock: kmock.KubernetesEmulator,
    tmp_path: Path,
    sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kmock.resources["batch/v1/jobs"] = {"namespaced": True}
    kmock.resources["v1/pods"] = {"namespaced": True}
    clients = Clients.for_host(str(kmock.url))
    await asyncio.to_thread(clients.core.create_namespaced_pod, NS, coordinator_pod())
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: k, cluster: {{server: "{str(kmock.url).rstrip("/")}"}}}}]
users: [{{name: u, user: {{}}}}]
contexts: [{{name: c, context: {{cluster: k, user: u, namespace: {NS}}}}}]
current-context: c
"""
    )
    n = 40
    make_source(tmp_path / "src", n, seed=9)
    state = f"file://{tmp_path}/state"
    env = run_env(tmp_path, sandbox)
    for name, value in env.items():
        if name.startswith(("INGEST_", "AIONVISION_")):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("POD_NAME", POD)
    monkeypatch.setenv("POD_NAMESPACE", NS)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings = load_settings(
        state=state,
        kubernetes={"kubeconfig": str(kubeconfig), "parallelism": 2, "watch_seconds": 5},
        plan={"shards": 2},
    )
    kubelet = Kubelet(clients, dict(os.environ))
    code = await asyncio.wait_for(
        coordinate_command(str(tmp_path / "src"), settings, None, observer=kubelet), 150
    )
    assert code == 0
    assert kubelet.exit_codes == [0, 0]
    report = (tmp_path / "state" / "runs" / COORDINATOR_JOB / "report.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(report)))
    assert len(rows) == n
    assert {r["outcome"] for r in rows} == {"uploaded"}
    assert len(sandbox.files()) == n

    # A restarted coordinator finds the finished Job, plans nothing new, reports again.
    assert (
        await asyncio.wait_for(coordinate_command(str(tmp_path / "src"), settings, None), 60) == 0
    )
    jobs = kmock[kmock.action.CREATE, kmock.resource("batch/v1/jobs")]
    assert len(jobs) == 1
