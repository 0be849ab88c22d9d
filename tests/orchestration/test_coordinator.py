"""The coordinator against kmock's KubernetesEmulator, through the real ``kubernetes`` client.

A scripted "Job controller" drives each lifecycle: every time the coordinator sees a new
state of the worker Job, the script patches the next status into the emulator, so the
test moves on events, never on sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import Callable
from typing import Any

import kmock
import pytest

from ingest.errors import ConfigError, FatalError
from ingest.launch.jobspec import Manifest, OwnerRef, job_name, template_digest
from ingest.launch.kubernetes import Clients, KubernetesLauncher
from ingest.launch.semantics import Verdict, VerdictKind
from ingest.orchestration.flow import orchestrate
from ingest.orchestration.kubernetes import KubernetesJob, Observer, run_id_for_job
from ingest.orchestration.progress import ProgressView, RunProgress
from ingest.settings import Settings, load_settings
from ingest.state.records import RunPlan

NS = "imports"
COORDINATOR_JOB = "nightly-29000000"
COORDINATOR_UID = "0b5e6c9a-4b1e-4a59-9d2e-5d1f3f0c0001"
POD = "nightly-29000000-x7k2p"


def coordinator_pod() -> Manifest:
    """The coordinator's pod as the API would return it (the chart's shape, plus injections)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": POD,
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/name": "aion-ingest",
                "app.kubernetes.io/instance": "nightly",
                "app.kubernetes.io/component": "coordinator",
                "helm.sh/chart": "aion-ingest-0.1.0",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": COORDINATOR_JOB,
                    "uid": COORDINATOR_UID,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "serviceAccountName": "nightly-aion-ingest",
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "zone", "operator": "In", "values": ["a"]}
                                ]
                            }
                        ]
                    }
                }
            },
            "imagePullSecrets": [{"name": "registry"}],
            "containers": [
                {
                    "name": "coordinator",
                    "image": "ghcr.io/aionvision/aion-ingest:0.1.0",
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["coordinate"],
                    "env": [
                        {"name": "INGEST_STATE", "value": "s3://state/runs"},
                        {
                            "name": "AIONVISION_API_KEY",
                            "valueFrom": {
                                "secretKeyRef": {"name": "nightly-api", "key": "api-key"}
                            },
                        },
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::1:role/ingest"},
                        {"name": "INGEST_WORKER__PARALLEL_WORKERS", "value": "99"},
                    ],
                    "envFrom": [{"configMapRef": {"name": "nightly-aion-ingest"}}],
                    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/x"},
                        {"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks"},
                    ],
                }
            ],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {
                    "name": "kube-api-access-abcde",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                            {"configMap": {"name": "kube-root-ca.crt"}},
                        ]
                    },
                },
                {
                    "name": "aws-iam-token",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"audience": "sts.amazonaws.com", "path": "t"}}
                        ]
                    },
                },
            ],
        },
    }


ENV = {"POD_NAME": POD, "POD_NAMESPACE": NS}


@pytest.fixture
def clients(kmock: kmock.KubernetesEmulator) -> Clients:
    # A real API server knows every built-in resource; the emulator those it is told of.
    kmock.resources["batch/v1/jobs"] = {"namespaced": True}
    kmock.resources["v1/pods"] = {"namespaced": True}
    return Clients.for_host(str(kmock.url))


@pytest.fixture
async def cluster(clients: Clients) -> Clients:
    """The emulator with the coordinator's pod in it."""
    await asyncio.to_thread(clients.core.create_namespaced_pod, NS, coordinator_pod())
    return clients


def make_settings(**kubernetes: Any) -> Settings:
    k = {"parallelism": 2, "backoff_limit_per_index": 2, "watch_seconds": 5, **kubernetes}
    return load_settings(state="s3://state/runs", kubernetes=k)


class Controller:
    """Plays the Job controller: one status patch per state the coordinator sees."""

    def __init__(self, clients: Clients, patches: list[Manifest]) -> None:
        self.clients = clients
        self.patches = list(patches)
        self.seen: list[Manifest] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.first = asyncio.Event()

    def __call__(self, job: Manifest) -> None:
        self.seen.append(job)
        self.first.set()
        if self.patches:
            patch = {"status": self.patches.pop(0)}
            meta = job["metadata"]
            self.tasks.append(
                asyncio.create_task(
                    asyncio.to_thread(
                        self.clients.batch.patch_namespaced_job_status,
                        meta["name"],
                        meta["namespace"],
                        patch,
                    )
                )
            )


def fake_plan(run_id: str, shards: int) -> RunPlan:
    return RunPlan(
        run_id=run_id, created_at="2025-01-01T00:00:00+00:00", source="s3://photos/",
        filters={}, settings_digest="", shard_items=[10] * shards, shard_bytes=[100] * shards,
        shard_etags=["e"] * shards, items=10 * shards, bytes=100 * shards, listed=10 * shards,
        filtered={}, skipped_records=0, histogram={}, quota=None, item_cost_bytes=0.0,
    )  # fmt: skip


class Steps:
    """The injected run steps (no state store), recording their calls."""

    def __init__(self, shards: int = 3) -> None:
        self.shards = shards
        self.planned: list[str | None] = []
        self.reported: list[tuple[str, Verdict | None]] = []

    async def plan(self, run_id: str | None) -> RunPlan:
        self.planned.append(run_id)
        assert run_id is not None  # the coordinator always knows its run id
        return fake_plan(run_id, self.shards)

    async def complete_shards(self, plan: RunPlan) -> list[int]:
        return []

    async def progress(self, run_id: str) -> RunProgress:
        return RunProgress(run_id, 0.0, 30, 3000, 0, 0, 0.0, 0.0, None, ())

    async def report(self, run_id: str, verdict: Verdict | None) -> list[str]:
        self.reported.append((run_id, verdict))
        return [f"report: s3://state/runs/runs/{run_id}/report.json"]


async def coordinate(
    settings: Settings,
    steps: Steps,
    launcher: KubernetesLauncher,
    *,
    env: dict[str, str],
    observer: Observer | None = None,
    run_id: str | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """The flow as ``aion-ingest coordinate`` runs it, with injected steps."""
    assert settings.state
    return await orchestrate(
        KubernetesJob(launcher, settings.state, env=env, observer=observer),
        steps,
        run_id=run_id,
        say=logging.getLogger("ingest.coordinator").info,
        view=ProgressView(tty=False),
        stop=stop,
    )


def ending(
    type_: str, reason: str | None = None, *, completed: str = "", failed: str = ""
) -> list[Manifest]:
    """The status patches of a lifecycle: running, progress, then the given ending."""
    end: Manifest = {"type": type_, "status": "True"}
    if reason:
        end["reason"] = reason
        end["message"] = f"Job has {reason}"
    final: Manifest = {"active": 0, "conditions": [end]}
    if completed:
        final["completedIndexes"] = completed
    if failed:
        final["failedIndexes"] = failed
    return [
        {"active": 2, "startTime": "2025-01-01T00:00:00Z"},
        {"active": 1, "completedIndexes": "0", "succeeded": 1},
        final,
    ]


async def run(
    clients: Clients,
    patches: list[Manifest],
    steps: Steps,
    settings: Settings | None = None,
    env: dict[str, str] = ENV,
    **kw: Any,
) -> tuple[int, Controller]:
    controller = Controller(clients, patches)
    settings = settings or make_settings()
    launcher = KubernetesLauncher(clients, settings.kubernetes)
    code = await asyncio.wait_for(
        coordinate(settings, steps, launcher, env=env, observer=controller, **kw), timeout=30
    )
    await asyncio.gather(*controller.tasks)
    return code, controller


def owner_of(meta: Manifest) -> OwnerRef:
    (o,) = meta["ownerReferences"]
    return OwnerRef(o["name"], o["uid"], o["kind"], o["apiVersion"])


def creates(emulator: kmock.KubernetesEmulator) -> int:
    return len(emulator[kmock.action.CREATE, kmock.resource("batch/v1/jobs")])


async def test_created_job_spec_field_by_field(
    cluster: Clients, kmock: kmock.KubernetesEmulator
) -> None:
    steps = Steps(shards=3)
    settings = make_settings(
        max_failed_indexes=1, active_deadline_seconds=7200, ttl_seconds_after_finished=600
    )
    code, _ = await run(cluster, ending("Complete", completed="0-2"), steps, settings=settings)
    assert code == 0
    assert steps.planned == [COORDINATOR_JOB]  # the run id is the coordinator Job's name
    name = job_name("aion-ingest", COORDINATOR_JOB)
    job = cluster.plain(await asyncio.to_thread(cluster.batch.read_namespaced_job, name, NS))

    meta = job["metadata"]
    assert meta["name"] == "aion-ingest-nightly-29000000"
    assert meta["namespace"] == NS
    assert meta["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": COORDINATOR_JOB, "uid": COORDINATOR_UID}
    ]
    assert meta["labels"] == {
        "helm.sh/chart": "aion-ingest-0.1.0",  # every label of the pod reaches the workers
        "app.kubernetes.io/name": "aion-ingest",
        "app.kubernetes.io/instance": "nightly",
        "app.kubernetes.io/version": "0.1.0",
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/managed-by": "aion-ingest-coordinator",
        "aion-ingest/run-id": COORDINATOR_JOB,
    }
    assert meta["annotations"] == {
        "aion-ingest/run-id": COORDINATOR_JOB,
        "aion-ingest/coordinator-uid": COORDINATOR_UID,  # who created it: a rerun is another
        "aion-ingest/template-digest": template_digest(job["spec"], owner_of(meta)),
    }

    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 3
    assert spec["parallelism"] == 2
    assert spec["backoffLimitPerIndex"] == 2
    assert spec["maxFailedIndexes"] == 1
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["ttlSecondsAfterFinished"] == 600
    assert spec["activeDeadlineSeconds"] == 7200
    assert "backoffLimit" not in spec
    assert spec["podFailurePolicy"] == {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "worker", "operator": "In", "values": [2, 3]},
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }

    template = spec["template"]
    assert template["metadata"]["labels"] == meta["labels"]
    pod = template["spec"]
    source = coordinator_pod()["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "nightly-aion-ingest"
    for key in ("securityContext", "nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
        assert pod[key] == source[key], key
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]  # projected ones are re-injected

    (container,) = pod["containers"]
    coordinator = source["containers"][0]
    assert container["name"] == "worker"
    assert container["image"] == coordinator["image"]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"] == [
        "work",
        "--run-id",
        COORDINATOR_JOB,
        "--state",
        "s3://state/runs",
    ]
    assert "command" not in container  # the image's entrypoint, aion-ingest
    assert container["envFrom"] == coordinator["envFrom"]
    assert container["resources"] == coordinator["resources"]
    assert container["securityContext"] == coordinator["securityContext"]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert container["env"] == [
        {"name": "INGEST_STATE", "value": "s3://state/runs"},
        {
            "name": "AIONVISION_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "nightly-api", "key": "api-key"}},
        },
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "INGEST_WORKER__PARALLEL_WORKERS", "value": "2"},
    ]


@pytest.mark.parametrize(
    ("patches", "kind", "code", "failed"),
    [
        (ending("Complete", completed="0-2"), VerdictKind.COMPLETE, 0, set()),
        (
            ending("Failed", "FailedIndexes", completed="0,2", failed="1"),
            VerdictKind.FAILED_INDEXES,
            4,
            {1},
        ),
        (
            ending("Failed", "MaxFailedIndexesExceeded", completed="0", failed="1-2"),
            VerdictKind.MAX_FAILED_INDEXES,
            4,
            {1, 2},
        ),
        (
            ending("Failed", "PodFailurePolicy", completed="0"),
            VerdictKind.FAILED_BY_POLICY,
            3,
            set(),
        ),
        (
            ending("Failed", "DeadlineExceeded", completed="0"),
            VerdictKind.DEADLINE_EXCEEDED,
            4,
            set(),
        ),
        (ending("Failed", "BackoffLimitExceeded"), VerdictKind.BACKOFF_LIMIT_EXCEEDED, 4, set()),
        (ending("Failed", "SomethingNew"), VerdictKind.FAILED, 4, set()),
    ],
)
async def test_lifecycle_to_each_exit_code(
    cluster: Clients,
    patches: list[Manifest],
    kind: VerdictKind,
    code: int,
    failed: set[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    steps = Steps(shards=3)
    caplog.set_level("INFO", logger="ingest")
    got, controller = await run(cluster, patches, steps)
    assert got == code
    ((run_id, verdict),) = steps.reported
    assert run_id == COORDINATOR_JOB
    assert verdict.kind is kind
    assert verdict.failed == failed
    assert verdict.completions == 3
    # progress was logged from each state the watch saw
    assert len(controller.seen) == 4
    assert "1/3 indexes complete, 1 running" in caplog.text
    if failed:
        assert "failed" in caplog.text and "to retry the failed shards" in caplog.text


async def test_job_waits_through_interim_conditions(cluster: Clients) -> None:
    """FailureTarget comes before Failed while pods terminate: not an ending yet."""
    steps = Steps(shards=2)
    patches = [
        {"active": 1, "conditions": [{"type": "FailureTarget", "status": "True"}]},
        {
            "conditions": [
                {"type": "FailureTarget", "status": "True"},
                {"type": "Failed", "status": "True", "reason": "PodFailurePolicy"},
            ]
        },
    ]
    code, controller = await run(cluster, patches, steps)
    assert code == 3
    assert len(controller.seen) == 3


async def test_restarted_coordinator_adopts_the_job(
    cluster: Clients, kmock: kmock.KubernetesEmulator
) -> None:
    steps = Steps(shards=3)
    settings = make_settings()
    first = Controller(cluster, [])
    task = asyncio.create_task(
        coordinate(
            settings,
            steps,
            KubernetesLauncher(cluster, settings.kubernetes),
            env=ENV,
            observer=first,
        )
    )
    await asyncio.wait_for(first.first.wait(), 30)
    task.cancel()  # the coordinator pod dies mid-watch
    with pytest.raises(asyncio.CancelledError):
        await task
    assert creates(kmock) == 1

    code, _ = await run(cluster, ending("Complete", completed="0-2"), steps, settings=settings)
    assert code == 0
    assert steps.planned == [COORDINATOR_JOB]  # planned once: the restart found the Job
    assert creates(kmock) == 1
    jobs = await asyncio.to_thread(cluster.batch.list_namespaced_job, NS)
    assert [j.metadata.name for j in jobs.items] == ["aion-ingest-nightly-29000000"]


async def test_create_conflict_adopts_the_same_runs_job(cluster: Clients) -> None:
    """Two coordinators race: the loser's create gets 409 and adopts the winner's Job."""
    settings = make_settings()
    launcher = KubernetesLauncher(cluster, settings.kubernetes)
    info = await launcher.pod_info(ENV)
    a = await launcher.create(info, run_id="r1", state_uri="s3://s/p", shards=2)
    b = await launcher.create(info, run_id="r1", state_uri="s3://s/p", shards=2)
    assert a["metadata"]["name"] == b["metadata"]["name"] == "aion-ingest-r1"


async def test_name_taken_by_another_run_is_a_clear_error(cluster: Clients) -> None:
    settings = make_settings()
    launcher = KubernetesLauncher(cluster, settings.kubernetes)
    info = await launcher.pod_info(ENV)
    squatter = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "aion-ingest-r1", "namespace": NS},
        "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "x"}]}}},
    }
    await asyncio.to_thread(cluster.batch.create_namespaced_job, NS, squatter)
    with pytest.raises(ConfigError, match="belongs to another run"):
        await launcher.create(info, run_id="r1", state_uri="s3://s/p", shards=2)


class Nth:
    """kmock criteria matching the n-th request (from 1) of an action.

    The requests seen are shared by every criterion made here: kmock stops evaluating at
    the first reaction that matches, so a private counter would miss requests."""

    def __init__(self, action: kmock.action) -> None:
        self.action = action
        self.ids: list[int] = []

    def __call__(self, n: int) -> Callable[[Any], bool]:
        def match(request: Any) -> bool:
            if request.action != self.action:
                return False
            if request.id not in self.ids:
                self.ids.append(request.id)
            return self.ids.index(request.id) + 1 == n

        return match


async def test_watch_410_gone_is_resumed(cluster: Clients, kmock: kmock.KubernetesEmulator) -> None:
    nth = Nth(kmock.action.WATCH)
    kmock[nth(1)] << {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "code": 410,
            "reason": "Expired",
            "message": "too old resource version",
        },
    }
    code, _ = await run(cluster, ending("Complete", completed="0-2"), Steps())
    assert code == 0
    assert len(kmock[kmock.action.WATCH]) >= 2
    assert len(kmock[kmock.action.LIST]) >= 2  # listed again after the 410


async def test_watch_ended_by_the_server_or_a_5xx_is_resumed(
    cluster: Clients, kmock: kmock.KubernetesEmulator
) -> None:
    # The first watch ends at once with no event (a server-side timeout), the second
    # fails with a 503; the third one sees the Job through.
    nth = Nth(kmock.action.WATCH)
    kmock[nth(1)] << b""
    kmock[nth(2)] << 503
    code, _ = await run(cluster, ending("Complete", completed="0-2"), Steps())
    assert code == 0
    assert len(kmock[kmock.action.WATCH]) >= 3


async def test_deleted_job_is_an_error(cluster: Clients) -> None:
    class Deleter(Controller):
        def __call__(self, job: Manifest) -> None:
            self.tasks.append(
                asyncio.create_task(
                    asyncio.to_thread(
                        self.clients.batch.delete_namespaced_job, job["metadata"]["name"], NS
                    )
                )
            )

    settings = make_settings()
    deleter = Deleter(cluster, [])
    from ingest.errors import RetryableError

    with pytest.raises(RetryableError, match="was deleted"):
        await coordinate(
            settings,
            Steps(),
            KubernetesLauncher(cluster, settings.kubernetes),
            env=ENV,
            observer=deleter,
        )
    await asyncio.gather(*deleter.tasks)


async def test_forbidden_is_fatal_and_names_rbac(
    cluster: Clients, kmock: kmock.KubernetesEmulator
) -> None:
    (
        kmock[kmock.action.CREATE, kmock.resource("batch/v1/jobs")]
        << 403
        << {
            "kind": "Status",
            "apiVersion": "v1",
            "code": 403,
            "reason": "Forbidden",
        }
    )
    with pytest.raises(FatalError, match=r"rbac\.create"):
        await run(cluster, [], Steps())


async def test_outside_a_cluster_needs_an_image_and_a_run_id(clients: Clients) -> None:
    settings = make_settings()
    launcher = KubernetesLauncher(clients, settings.kubernetes)
    with pytest.raises(ConfigError, match="--run-id"):
        await coordinate(settings, Steps(), launcher, env={})
    with pytest.raises(ConfigError, match="INGEST_KUBERNETES__IMAGE"):
        await coordinate(settings, Steps(), launcher, env={}, run_id="r2")
    settings = make_settings(image="example/ingest:1", namespace="other")
    launcher = KubernetesLauncher(clients, settings.kubernetes)
    code, _ = await run(
        clients,
        ending("Complete", completed="0-2"),
        Steps(),
        settings=settings,
        env={},
        run_id="r3",
    )
    assert code == 0
    job = await asyncio.to_thread(clients.batch.read_namespaced_job, "aion-ingest-r3", "other")
    assert job.spec.template.spec.containers[0].image == "example/ingest:1"
    assert not job.metadata.owner_references


async def test_missing_state_store_is_a_config_error() -> None:
    from ingest.commands.coordinate import coordinate_command

    with pytest.raises(ConfigError, match="INGEST_STATE"):
        await coordinate_command("s3://photos/", load_settings(), None)


@pytest.mark.parametrize(
    "name",
    ["nightly-29000000", "a" * 40, "my-very-long-release-name-aion-ingest-29000000", "X_Y"],
)
def test_run_id_from_the_coordinator_job_name(name: str) -> None:
    run_id = run_id_for_job(name)
    assert len(run_id) <= 40
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", run_id)
    assert run_id_for_job(name) == run_id  # stable across restarts
    if len(name) <= 40 and name.islower():
        assert run_id == name


async def test_sigterm_stops_watching_and_leaves_the_job_to_the_next_coordinator(
    cluster: Clients, kmock: kmock.KubernetesEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The coordinator pod is evicted: it exits 143 at once, reports nothing, and leaves
    the worker Job (the run) running; the next coordinator adopts it."""
    steps = Steps(shards=3)
    settings = make_settings()
    caplog.set_level("INFO", logger="ingest")

    def evict(job: Manifest) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # a real signal, to the handler the flow set

    launcher = KubernetesLauncher(cluster, settings.kubernetes)
    code = await asyncio.wait_for(
        coordinate(settings, steps, launcher, env=ENV, observer=evict), timeout=30
    )
    assert code == 143
    assert steps.reported == []
    assert "stopped watching; the worker Job aion-ingest-nightly-29000000 keeps running" in (
        caplog.text
    )
    job = await asyncio.to_thread(
        cluster.batch.read_namespaced_job, "aion-ingest-nightly-29000000", NS
    )
    assert not (job.status and job.status.conditions)  # untouched: still running

    code, _ = await run(cluster, ending("Complete", completed="0-2"), steps, settings=settings)
    assert code == 0
    assert steps.planned == [COORDINATOR_JOB]  # adopted, not planned again
    assert creates(kmock) == 1
