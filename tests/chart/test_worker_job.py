"""The worker Job the coordinator builds from the pod the chart renders: same image, env,
secrets, service account and security context, and valid for Kubernetes 1.29 to 1.37."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ingest.launch.jobspec import (
    CONFIG_ANNOTATION,
    TEMPLATE_ANNOTATION,
    CoordinatorPodInfo,
    OwnerRef,
    build_worker_job,
    workers_config_digest,
)
from ingest.settings import load_settings
from tests.chart.conftest import BASE, Helm, by_kind, merge
from tests.chart.test_chart import VALUE_SETS, coordinator_pod_spec, validate_all

CONFIG_MAP_UID = "3f0c9b1e-0000-4000-8000-00000000c0f1"


def coordinator_template(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rendered coordinator Job's (or CronJob's) pod template."""
    kinds = by_kind(docs)
    owner = (kinds.get("Job") or kinds["CronJob"])[0]
    return dict(
        owner["spec"]["jobTemplate"]["spec"]["template"]
        if owner["kind"] == "CronJob"
        else owner["spec"]["template"]
    )


def coordinator_info(docs: list[dict[str, Any]], settings: Any) -> CoordinatorPodInfo:
    """What the launcher's pod_info reads: the pod, its Job's template, the owning ConfigMap."""
    info = CoordinatorPodInfo.from_pod(coordinator_pod(docs), template=coordinator_template(docs))
    if info.workers_owner_name:
        owner = OwnerRef(info.workers_owner_name, CONFIG_MAP_UID, "ConfigMap", "v1")
        data = by_kind(docs)["ConfigMap"][0]["data"]
        config = workers_config_digest(data)
        info = dataclasses.replace(info, workers_owner=owner, workers_config=config)
    return info.with_settings(settings.kubernetes)


def coordinator_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod Kubernetes would make from the rendered coordinator Job (or CronJob)."""
    template = coordinator_template(docs)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            **template["metadata"],
            "name": "nightly-aion-ingest-abcde",
            "namespace": "imports",
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": "nightly-aion-ingest",
                    "uid": "3f0c9b1e-0000-4000-8000-000000000001",
                    "controller": True,
                }
            ],
        },
        "spec": template["spec"],
    }


def settings_from_configmap(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The coordinator's settings as its environment (the ConfigMap) makes them."""
    for key, value in by_kind(docs)["ConfigMap"][0]["data"].items():
        monkeypatch.setenv(key, value)
    return load_settings()


@pytest.mark.parametrize("name", VALUE_SETS)
def test_worker_job_inherits_the_coordinator_pod(
    helm: Helm, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = helm.template(VALUE_SETS[name])
    settings = settings_from_configmap(docs, monkeypatch)
    info = coordinator_info(docs, settings)
    job = build_worker_job(
        info,
        settings.kubernetes,
        run_id="nightly-aion-ingest",
        state_uri=settings.state,
        shards=40,
    )
    validate_all([job])

    coordinator = coordinator_pod_spec(docs)
    c = coordinator["containers"][0]
    worker_pod = job["spec"]["template"]["spec"]
    (w,) = worker_pod["containers"]
    assert w["image"] == c["image"]
    assert w["imagePullPolicy"] == c["imagePullPolicy"]
    assert w["envFrom"] == c["envFrom"]
    assert w["securityContext"] == c["securityContext"]
    assert w["volumeMounts"] == c["volumeMounts"]
    # every secret reference and variable of the coordinator reaches the workers
    assert [e for e in w["env"] if e["name"] != "INGEST_WORKER__PARALLEL_WORKERS"] == c["env"]
    assert w["args"] == ["work", "--run-id", "nightly-aion-ingest", "--state", settings.state]
    assert worker_pod["serviceAccountName"] == (
        settings.kubernetes.service_account or coordinator["serviceAccountName"]
    )
    assert worker_pod["securityContext"] == coordinator["securityContext"]
    assert worker_pod["volumes"] == coordinator["volumes"]
    for key in (
        "nodeSelector",
        "tolerations",
        "affinity",
        "topologySpreadConstraints",
        "imagePullSecrets",
        "priorityClassName",
        "terminationGracePeriodSeconds",
    ):
        assert worker_pod.get(key) == coordinator.get(key), key
    resources = settings.kubernetes.resources or c.get("resources")
    assert w.get("resources") == resources
    labels = job["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "nightly"
    assert labels["app.kubernetes.io/component"] == "worker"
    # podLabels and podAnnotations reach the worker pods; the coordinator's config checksum
    # does not: the digest of what the workers read of the ConfigMap stands for it
    template = coordinator_template(docs)["metadata"]
    worker_meta = job["spec"]["template"]["metadata"]
    for key, value in (VALUE_SETS[name].get("podLabels") or {}).items():
        assert worker_meta["labels"][key] == labels[key] == value
    annotations = dict(worker_meta.get("annotations") or {})
    assert (annotations.pop(CONFIG_ANNOTATION, None) is None) == (info.workers_owner is None)
    assert annotations == {
        k: v
        for k, v in template["annotations"].items()
        if not k.startswith(("aion-ingest/", "checksum/"))
    }
    assert set(VALUE_SETS[name].get("podAnnotations") or {}) <= set(annotations)
    (owner,) = job["metadata"]["ownerReferences"]
    if VALUE_SETS[name].get("mode") == "cron":  # the coordinator Job: history limits clean up
        assert owner == {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "nightly-aion-ingest",
            "uid": "3f0c9b1e-0000-4000-8000-000000000001",
        }
    else:  # the release's ConfigMap: helm upgrade keeps the workers, uninstall deletes them
        assert owner == {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "nightly-aion-ingest",
            "uid": CONFIG_MAP_UID,
        }
    spec = job["spec"]
    assert spec["parallelism"] == settings.kubernetes.parallelism
    assert spec["backoffLimitPerIndex"] == settings.kubernetes.backoff_limit_per_index


def test_every_job_field_set_is_valid(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker Job with every optional field, against every schema version."""
    docs = helm.template(VALUE_SETS["everything"])
    settings = settings_from_configmap(docs, monkeypatch)
    info = coordinator_info(docs, settings)
    job = build_worker_job(info, settings.kubernetes, run_id="r", state_uri="s3://s/p", shards=3)
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "nightly-aion-ingest-worker"
    assert job["spec"]["template"]["spec"]["volumes"][1] == {
        "name": "ca",
        "configMap": {"name": "minio-ca"},
    }
    assert job["spec"]["maxFailedIndexes"] == 3  # capped at completions, as the API requires
    assert job["spec"]["activeDeadlineSeconds"] == 86400
    assert job["spec"]["parallelism"] == 3
    validate_all([job])
    assert BASE["run"]["state"] in str(docs)


def worker_template_digest(helm: Helm, values: dict[str, Any], mp: pytest.MonkeyPatch) -> str:
    """The template digest of the worker Job a release with ``values`` would build."""
    docs = helm.template(values)
    with mp.context() as m:
        settings = settings_from_configmap(docs, m)
    info = coordinator_info(docs, settings)
    job = build_worker_job(info, settings.kubernetes, run_id="r", state_uri="s3://s/p", shards=9)
    return str(job["metadata"]["annotations"][TEMPLATE_ANNOTATION])


UPGRADE_BASE = merge(BASE, {"metrics": {"enabled": True}, "workers": {"resources": {}}})


@pytest.mark.parametrize(
    "change",
    [
        {"metrics": {"pushgatewayUrl": "http://pushgateway.monitoring:9091"}},
        {"metrics": {"alerts": {"stalledMinutes": 60}, "podMonitor": {"interval": "30s"}}},
        {"coordinator": {"activeDeadlineSeconds": 400000, "backoffLimit": 5}},
        {"run": {"settings": {"INGEST_KUBERNETES__PROGRESS_SECONDS": "60"}}},
        {"run": {"settings": {"INGEST_PLAN__MAX_ITEMS_PER_SHARD": "500"}}},
        {"run": {"settings": {"INGEST_FILTERS__MIN_SIZE": "1KiB"}}},
        {"preflight": {"limit": 10}},
        # the workers have their own resources: the coordinator's are its own
        {
            "workers": {"resources": {"limits": {"memory": "2Gi"}}},
            "resources": {"requests": {"cpu": "2"}},
        },
    ],
)
def test_an_upgrade_of_coordinator_values_keeps_the_running_worker_job(
    helm: Helm, change: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """helm upgrade changing only what the coordinator uses: the worker template digest is
    the same, so a running worker Job is kept (KubernetesLauncher.reusable)."""
    base = merge(UPGRADE_BASE, {"workers": change.get("workers", {})})
    before = worker_template_digest(helm, base, monkeypatch)
    assert worker_template_digest(helm, merge(base, change), monkeypatch) == before


@pytest.mark.parametrize(
    "change",
    [
        {"run": {"settings": {"INGEST_WORKER__CONCURRENCY": "8"}}},
        {"metrics": {"lingerSeconds": 5}},
        {"metrics": {"port": 9500}},
        {"s3": {"endpointUrl": "https://minio.example:9000"}},
        {"workers": {"parallelism": 8}},
        {"podAnnotations": {"karpenter.sh/do-not-disrupt": "true"}},
        # no workers.resources: the workers inherit the coordinator's
        {"resources": {"limits": {"memory": "2Gi"}}},
    ],
)
def test_an_upgrade_of_what_the_workers_read_replaces_the_worker_job(
    helm: Helm, change: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = worker_template_digest(helm, UPGRADE_BASE, monkeypatch)
    assert worker_template_digest(helm, merge(UPGRADE_BASE, change), monkeypatch) != before
