"""The Helm lifecycle of a run on kmock, through the real client: the launcher's side.

What a coordinator does with the run's worker Job when it finds one (``reusable``):
keep it (its own, a restart; a complete run; a running one with the same workers), or
retire it (delete with a UID precondition, checkpoints untouched) so a new one is created
for the shards that are not complete: a failed run's rerun, ``helm upgrade`` with new
worker values, ``helm uninstall`` then ``helm install``. kmock assigns no UIDs and runs
no garbage collector: the tests set UIDs as the API server would and play its deletions.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import dataclasses
import hashlib
import json
import pathlib
import subprocess
import sys
import uuid
from typing import Any

import kmock
import pytest

from ingest.launch.jobspec import (
    CONFIG_ANNOTATION,
    COORDINATOR_ONLY_KEYS,
    CREATOR_ANNOTATION,
    Manifest,
    job_name,
    workers_config_digest,
)
from ingest.launch.kubernetes import Clients, KubernetesLauncher
from ingest.settings import Settings, load_settings
from tests.orchestration.test_coordinator import NS, coordinator_pod

RUN = "nightly-aion-ingest"
CONFIG_MAP = "nightly-aion-ingest"
WORKER_JOB = job_name("aion-ingest", RUN)


@dataclasses.dataclass
class Release:
    """One revision of a Helm release in the emulator: ConfigMap, coordinator Job, its pod."""

    revision: int
    config_map_uid: str
    pod_annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    config: dict[str, str] = dataclasses.field(
        default_factory=lambda: {"INGEST_STATE": "s3://state/runs"}
    )

    @property
    def job(self) -> str:
        return f"nightly-aion-ingest-r{self.revision}"

    @property
    def job_uid(self) -> str:
        return f"{self.config_map_uid[:-8]}{self.config_map_uid[-4:]}j{self.revision:03d}"

    @property
    def pod(self) -> str:
        return f"{self.job}-x7k2p"

    def env(self) -> dict[str, str]:
        return {"POD_NAME": self.pod, "POD_NAMESPACE": NS}

    def template(self) -> Manifest:
        """The coordinator Job's pod template, as the chart renders it."""
        base = coordinator_pod()
        annotations = {
            "checksum/config": checksum(self.config),  # the whole ConfigMap, as Helm's
            "aion-ingest/workers-owner": f"ConfigMap/{CONFIG_MAP}",
            "sidecar.istio.io/inject": "false",
            **self.pod_annotations,
        }
        labels = {**base["metadata"]["labels"], "cost-center": "imaging"}
        return {"metadata": {"labels": labels, "annotations": annotations}, "spec": base["spec"]}

    async def install(self, clients: Clients, *, config_map: bool = True) -> None:
        if config_map:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": CONFIG_MAP, "namespace": NS, "uid": self.config_map_uid},
                "data": self.config,
            }
            await asyncio.to_thread(clients.core.create_namespaced_config_map, NS, body)
        template = self.template()
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": self.job, "namespace": NS, "uid": self.job_uid},
            "spec": {"template": _controller_stamped(template, self.job_uid)},
        }
        await asyncio.to_thread(clients.batch.create_namespaced_job, NS, job)
        pod = copy.deepcopy(coordinator_pod())
        pod["metadata"] = {
            "name": self.pod,
            "namespace": NS,
            "labels": dict(job["spec"]["template"]["metadata"]["labels"]),
            "annotations": {
                **template["metadata"]["annotations"],
                # what injectors add to the live pod, never meant for the workers
                "sidecar.istio.io/status": '{"containers":["istio-proxy"]}',
                "vault.hashicorp.com/agent-inject-status": "injected",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": self.job,
                    "uid": self.job_uid,
                    "controller": True,
                }
            ],
        }
        await asyncio.to_thread(clients.core.create_namespaced_pod, NS, pod)

    async def uninstall(self, clients: Clients) -> None:
        await asyncio.to_thread(clients.core.delete_namespaced_config_map, CONFIG_MAP, NS)
        await asyncio.to_thread(clients.batch.delete_namespaced_job, self.job, NS)
        await asyncio.to_thread(clients.core.delete_namespaced_pod, self.pod, NS)

    async def upgrade(self, clients: Clients, **changes: Any) -> Release:
        """The next revision: Helm deletes this coordinator Job, updates the ConfigMap."""
        await asyncio.to_thread(clients.batch.delete_namespaced_job, self.job, NS)
        await asyncio.to_thread(clients.core.delete_namespaced_pod, self.pod, NS)
        new = dataclasses.replace(self, revision=self.revision + 1, **changes)
        if new.config != self.config:
            patch = {"data": new.config}
            await asyncio.to_thread(clients.core.patch_namespaced_config_map, CONFIG_MAP, NS, patch)
        await new.install(clients, config_map=False)
        return new


def checksum(config: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _controller_stamped(template: Manifest, uid: str) -> Manifest:
    """The template as the API server stores it: the Job controller's labels added."""
    out = copy.deepcopy(template)
    out["metadata"]["labels"].update(
        {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid, "job-name": "x"}
    )
    return out


@pytest.fixture
def clients(kmock: kmock.KubernetesEmulator) -> Clients:
    kmock.resources["batch/v1/jobs"] = {"namespaced": True}
    kmock.resources["v1/pods"] = {"namespaced": True}
    kmock.resources["v1/configmaps"] = {"namespaced": True}
    return Clients.for_host(str(kmock.url))


def settings(**kubernetes: Any) -> Settings:
    k = {"parallelism": 2, "watch_seconds": 5, **kubernetes}
    return load_settings(state="s3://state/runs", kubernetes=k)


async def launch(clients: Clients, release: Release, k: Settings | None = None) -> Manifest:
    """What the coordinator does: find the run's Job, else create one (plan: 3 shards)."""
    launcher = KubernetesLauncher(clients, (k or settings()).kubernetes)
    info = await launcher.pod_info(release.env())
    job = await asyncio.wait_for(
        launcher.reusable(info, run_id=RUN, state_uri="s3://state/runs"), 30
    )
    if job is None:
        job = await launcher.create(info, run_id=RUN, state_uri="s3://state/runs", shards=3)
        await assign_uid(clients, job)
    return job


async def assign_uid(clients: Clients, job: Manifest) -> None:
    """What the API server does on create and kmock does not: give the object a UID."""
    uid = str(uuid.uuid4())
    meta = job["metadata"]
    patch = {"metadata": {"uid": uid}}
    await asyncio.to_thread(clients.batch.patch_namespaced_job, meta["name"], NS, patch)
    meta["uid"] = uid


async def installed(
    clients: Clients, config: dict[str, str] | None = None
) -> tuple[Release, Manifest]:
    """A release at revision 1 whose coordinator created the worker Job."""
    release = Release(1, "c0000000-0000-4000-8000-000000000001")
    if config is not None:
        release = dataclasses.replace(release, config=config)
    await release.install(clients)
    return release, await launch(clients, release)


async def end(clients: Clients, reason: str | None) -> None:
    """The Job controller ends the worker Job: Complete (reason None) or Failed(reason)."""
    cond = {"type": "Failed", "status": "True", "reason": reason} if reason else None
    status: Manifest = {
        "active": 0,
        "completedIndexes": "0-2" if cond is None else "0,2",
        "conditions": [cond or {"type": "Complete", "status": "True"}],
    }
    if cond is not None:
        status["failedIndexes"] = "1"
    await asyncio.to_thread(
        clients.batch.patch_namespaced_job_status, WORKER_JOB, NS, {"status": status}
    )


def deletes(emulator: kmock.KubernetesEmulator) -> list[Any]:
    return list(emulator[kmock.action.DELETE, kmock.resource("batch/v1/jobs")])


def job_deletes(emulator: kmock.KubernetesEmulator) -> list[Any]:
    """Deletions of the worker Job (not the coordinator Jobs Helm deletes)."""
    return [r for r in deletes(emulator) if r.name == WORKER_JOB]


async def test_workers_inherit_the_template_and_are_owned_by_the_configmap(
    clients: Clients,
) -> None:
    release = Release(1, "c0000000-0000-4000-8000-000000000001")
    await release.install(clients)
    job = await launch(clients, release)

    meta = job["metadata"]
    assert meta["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": CONFIG_MAP, "uid": release.config_map_uid}
    ]
    assert meta["annotations"][CREATOR_ANNOTATION] == release.job_uid
    template = job["spec"]["template"]["metadata"]
    # the user's labels and annotations, not the controller's nor the injectors' marks
    assert template["labels"]["cost-center"] == "imaging"
    assert meta["labels"]["cost-center"] == "imaging"
    assert template["labels"]["app.kubernetes.io/component"] == "worker"
    assert not {"controller-uid", "job-name", "batch.kubernetes.io/controller-uid"} & set(
        template["labels"]
    )
    # not the coordinator's checksum/config: the digest of what the workers read of it
    assert template["annotations"] == {
        "sidecar.istio.io/inject": "false",
        CONFIG_ANNOTATION: workers_config_digest(release.config),
    }


async def test_restarted_coordinator_keeps_and_reports_its_failed_job(
    clients: Clients, kmock: kmock.KubernetesEmulator
) -> None:
    release = Release(1, "c0000000-0000-4000-8000-000000000001")
    await release.install(clients)
    first = await launch(clients, release)
    await end(clients, "FailedIndexes")
    again = await launch(clients, release)  # the same coordinator Job, a new pod
    assert again["metadata"]["uid"] == first["metadata"]["uid"]
    assert again["status"]["failedIndexes"] == "1"
    assert not job_deletes(kmock)


@pytest.mark.parametrize("reason", ["FailedIndexes", "PodFailurePolicy", "DeadlineExceeded"])
async def test_upgrade_reruns_a_failed_run(
    clients: Clients, kmock: kmock.KubernetesEmulator, reason: str
) -> None:
    """helm upgrade (e.g. a fixed key): the failed worker Job goes, a new one is created."""
    rev1, first = await installed(clients)
    await end(clients, reason)

    rev2 = await rev1.upgrade(clients)
    second = await launch(clients, rev2)
    (delete,) = job_deletes(kmock)
    assert delete.data == {
        "propagationPolicy": "Background",  # finished: no pods left to wait for
        "preconditions": {"uid": first["metadata"]["uid"]},
    }
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["metadata"]["annotations"][CREATOR_ANNOTATION] == rev2.job_uid
    assert "status" not in second or not second["status"].get("conditions")


async def test_a_complete_run_is_never_rerun(
    clients: Clients, kmock: kmock.KubernetesEmulator
) -> None:
    rev1, first = await installed(clients)
    await end(clients, None)
    rev2 = await rev1.upgrade(clients, pod_annotations={"team": "new"})
    second = await launch(clients, rev2)
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert not job_deletes(kmock)


WORKER_CONFIG = {"INGEST_STATE": "s3://state/runs", "INGEST_WORKER__CONCURRENCY": "16"}


@pytest.mark.parametrize(
    "config",
    [
        WORKER_CONFIG,  # e.g. only coordinator.activeDeadlineSeconds changed
        # the ConfigMap (and the coordinator's checksum/config) changes in no key a worker reads
        {**WORKER_CONFIG, "INGEST_METRICS__PUSHGATEWAY_URL": "http://pushgateway:9091"},
        {**WORKER_CONFIG, "INGEST_KUBERNETES__PROGRESS_SECONDS": "60"},
        {**WORKER_CONFIG, "INGEST_PLAN__MAX_ITEMS_PER_SHARD": "500"},
    ],
)
async def test_upgrade_keeps_a_running_job_when_the_workers_values_are_the_same(
    clients: Clients, kmock: kmock.KubernetesEmulator, config: dict[str, str]
) -> None:
    """The running workers go on, their progress untouched."""
    rev1, first = await installed(clients, WORKER_CONFIG)
    rev2 = await rev1.upgrade(clients, config=config)
    second = await launch(clients, rev2)
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert not job_deletes(kmock)


async def test_upgrade_of_a_worker_setting_replaces_the_running_job(
    clients: Clients, kmock: kmock.KubernetesEmulator
) -> None:
    rev1, first = await installed(clients, WORKER_CONFIG)
    rev2 = await rev1.upgrade(clients, config={**WORKER_CONFIG, "INGEST_WORKER__CONCURRENCY": "4"})
    second = await launch(clients, rev2)
    (delete,) = job_deletes(kmock)
    assert delete.data == {
        "propagationPolicy": "Foreground",
        "preconditions": {"uid": first["metadata"]["uid"]},
    }
    annotations = second["spec"]["template"]["metadata"]["annotations"]
    assert annotations[CONFIG_ANNOTATION] == workers_config_digest(rev2.config)


@pytest.mark.parametrize(
    ("changes", "k"),
    [
        ({"pod_annotations": {"karpenter.sh/do-not-disrupt": "true"}}, {}),
        ({}, {"parallelism": 3}),
    ],
)
async def test_upgrade_replaces_a_running_job_whose_workers_changed(
    clients: Clients,
    kmock: kmock.KubernetesEmulator,
    changes: dict[str, Any],
    k: dict[str, Any],
) -> None:
    rev1, first = await installed(clients)
    rev2 = await rev1.upgrade(clients, **changes)
    second = await launch(clients, rev2, settings(**k))
    (delete,) = job_deletes(kmock)
    # running: the Job goes once its workers have flushed their checkpoints and exited
    assert delete.data == {
        "propagationPolicy": "Foreground",
        "preconditions": {"uid": first["metadata"]["uid"]},
    }
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    if k:
        assert second["spec"]["parallelism"] == 3
    else:
        annotations = second["spec"]["template"]["metadata"]["annotations"]
        assert annotations["karpenter.sh/do-not-disrupt"] == "true"


def test_no_worker_module_reads_a_coordinator_only_setting() -> None:
    """COORDINATOR_ONLY_KEYS leave the worker digest: the worker must never read them.
    Every ingest module `aion-ingest work` loads (ingest.worker.run), scanned for reads."""
    script = (
        "import sys, ingest.worker.run, ingest.sources.s3, ingest.sources.manifest\n"
        "import ingest.state.s3, ingest.state.local  # what the worker imports when used\n"
        "for name, module in sorted(sys.modules.items()):\n"
        "    if name.startswith('ingest') and name != 'ingest.settings':\n"
        "        print(module.__file__)"
    )
    files = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert len(files) > 10
    fields, groups = {"pushgateway_url", "push_timeout"}, {"plan", "filters", "kubernetes"}
    assert all(COORDINATOR_ONLY_KEYS.match(f"INGEST_METRICS__{f}") for f in fields)
    assert all(COORDINATOR_ONLY_KEYS.match(f"INGEST_{g}__x") for g in groups)
    for path in files:
        for node in ast.walk(ast.parse(pathlib.Path(path).read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            assert node.attr not in fields, f"{path}:{node.lineno} reads {node.attr}"
            owner = ast.unparse(node.value)
            if node.attr in groups:
                assert not owner.endswith("settings"), (
                    f"{path}:{node.lineno} reads {owner}.{node.attr}"
                )


@pytest.mark.parametrize("collected", [True, False])
async def test_uninstall_then_install_with_the_same_run_id_resumes(
    clients: Clients, kmock: kmock.KubernetesEmulator, collected: bool
) -> None:
    """helm uninstall deletes the ConfigMap; the garbage collector then deletes the worker
    Job it owns (``collected``) or has not yet when the new release's coordinator looks."""
    old = Release(1, "c0000000-0000-4000-8000-000000000001")
    await old.install(clients)
    first = await launch(clients, old)
    await old.uninstall(clients)
    if collected:
        await asyncio.to_thread(clients.batch.delete_namespaced_job, WORKER_JOB, NS)

    new = Release(1, "c0000000-0000-4000-8000-000000000002")  # a new release: revision 1
    await new.install(clients)
    second = await launch(clients, new)
    assert second["metadata"]["ownerReferences"][0]["uid"] == new.config_map_uid
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    if not collected:  # its owner is gone: retired, not watched until the GC removes it
        (delete,) = job_deletes(kmock)
        assert delete.data["preconditions"] == {"uid": first["metadata"]["uid"]}


async def test_a_job_being_deleted_is_waited_for(
    clients: Clients, kmock: kmock.KubernetesEmulator
) -> None:
    rev1, _ = await installed(clients)
    # Foreground deletion in progress: a finalizer holds the Job until its pods are gone.
    patch = {"metadata": {"finalizers": ["foregroundDeletion"]}}
    await asyncio.to_thread(clients.batch.patch_namespaced_job, WORKER_JOB, NS, patch)
    await asyncio.to_thread(clients.batch.delete_namespaced_job, WORKER_JOB, NS)
    rev2 = await rev1.upgrade(clients)
    watched = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_watch(request: Any) -> bool:  # a criterion that only observes: never matches
        if request.action == kmock.action.WATCH:
            loop.call_soon_threadsafe(watched.set)
        return False

    kmock[on_watch] << 500
    launcher = KubernetesLauncher(clients, settings().kubernetes)
    info = await launcher.pod_info(rev2.env())
    waiting = asyncio.create_task(launcher.reusable(info, run_id=RUN, state_uri="s3://state/runs"))

    await asyncio.wait_for(watched.wait(), 30)  # it found the Job and watches it go
    assert not waiting.done()
    patch = {"metadata": {"finalizers": []}}  # the pods are gone: the GC lets it go
    await asyncio.to_thread(clients.batch.patch_namespaced_job, WORKER_JOB, NS, patch)
    assert await asyncio.wait_for(waiting, 30) is None
    assert len(job_deletes(kmock)) == 1  # ours only: it was being deleted already


async def test_outside_a_cluster_a_running_job_is_watched_not_replaced(
    clients: Clients, kmock: kmock.KubernetesEmulator
) -> None:
    """`aion-ingest coordinate` on a laptop (no coordinator Job) must not kill a run."""
    _, first = await installed(clients)
    launcher = KubernetesLauncher(clients, settings(image="example/ingest:2").kubernetes)
    info = await launcher.pod_info({})
    info = dataclasses.replace(info, namespace=NS)
    found = await launcher.reusable(info, run_id=RUN, state_uri="s3://state/runs")
    assert found is not None and found["metadata"]["uid"] == first["metadata"]["uid"]
    assert not job_deletes(kmock)


async def test_retire_leaves_a_job_that_is_already_gone(clients: Clients) -> None:
    launcher = KubernetesLauncher(clients, settings().kubernetes)
    ghost = {"metadata": {"name": WORKER_JOB, "namespace": NS, "uid": "gone"}}
    await asyncio.wait_for(launcher.retire(ghost, "test"), 30)  # 404: nothing to do
