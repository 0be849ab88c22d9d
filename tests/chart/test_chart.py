"""The Helm chart: lint, render for each mode and switch, Kubernetes schemas 1.29 to 1.37."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.chart.conftest import BASE, CHART, KUBE_VERSIONS, Helm, by_kind, docs_of, merge

VALUE_SETS: dict[str, dict[str, Any]] = {
    "one-off": BASE,
    "cron": merge(
        BASE,
        {
            "mode": "cron",
            "cron": {
                "schedule": "30 1 * * *",
                "timeZone": "Europe/Paris",
                "suspend": True,
                "startingDeadlineSeconds": 300,
                "successfulJobsHistoryLimit": 5,
                "failedJobsHistoryLimit": 2,
            },
        },
    ),
    "existing-secrets": merge(
        BASE,
        {
            "api": {"key": "", "existingSecret": "aion-key", "existingSecretKey": "token"},
            "s3": {"credentials": "existingSecret", "existingSecret": "minio-creds"},
        },
    ),
    "rbac-off": merge(
        BASE,
        {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "ingest-sa"}},
    ),
    "everything": merge(
        BASE,
        {
            "image": {"digest": "sha256:" + "a" * 64, "pullSecrets": ["registry"]},
            "run": {"id": "migration-2024", "settings": {"INGEST_WORKER__CONCURRENCY": 32}},
            "s3": {
                "credentials": "secret",
                "accessKeyId": "AKIA0000",
                "secretAccessKey": "s3cret",
                "region": "eu-west-1",
                "endpointUrl": "https://minio.example:9000",
            },
            "workers": {
                "parallelism": 16,
                "maxFailedIndexes": 5,
                "activeDeadlineSeconds": 86400,
                "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "2Gi"}},
            },
            "coordinator": {"activeDeadlineSeconds": 90000, "ttlSecondsAfterFinished": 3600},
            "serviceAccount": {
                "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/ingest"}
            },
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"podAntiAffinity": {}},
            "priorityClassName": "batch-low",
            "podAnnotations": {"team": "data"},
        },
    ),
}


def validate_all(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                name = f"{doc['kind']}/{doc['metadata']['name']}"
                pytest.fail(f"{name} invalid for Kubernetes {version}: {exc.message} at {exc.path}")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_and_render_validate(helm: Helm, name: str) -> None:
    values = VALUE_SETS[name]
    lint = helm.run("lint", "--strict", str(CHART), values=values)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = helm.template(values)
    assert docs
    validate_all(docs)


def coordinator_pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = by_kind(docs)
    if "CronJob" in kinds:
        return kinds["CronJob"][0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return kinds["Job"][0]["spec"]["template"]["spec"]


def test_one_off_creates_the_coordinator_job(helm: Helm) -> None:
    kinds = by_kind(helm.template(BASE))
    assert sorted(kinds) == [
        "ConfigMap",
        "Job",
        "Role",
        "RoleBinding",
        "Secret",
        "ServiceAccount",
    ]
    (job,) = kinds["Job"]
    assert job["metadata"]["name"] == "nightly-aion-ingest"
    assert job["spec"]["backoffLimit"] == 6
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "nightly-aion-ingest"
    (c,) = pod["containers"]
    assert c["args"] == ["coordinate", "s3://photos/2024/"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["AIONVISION_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "nightly-aion-ingest-api", "key": "api-key"}
    }
    assert "AWS_ACCESS_KEY_ID" not in env  # s3.credentials=none: the pod's identity
    (config,) = kinds["ConfigMap"]
    assert config["data"]["INGEST_STATE"] == "s3://ingest-state/prod"
    assert config["data"]["INGEST_KUBERNETES__PARALLELISM"] == "4"
    assert c["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert "sk-test" not in str(config)  # the key lives in the Secret only


def test_pod_security(helm: Helm) -> None:
    for values in VALUE_SETS.values():
        pod = coordinator_pod_spec(helm.template(values))
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = pod["containers"][0]["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "tmp", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]


def test_cron_mode(helm: Helm) -> None:
    kinds = by_kind(helm.template(VALUE_SETS["cron"]))
    assert "Job" not in kinds
    (cron,) = kinds["CronJob"]
    spec = cron["spec"]
    assert spec["schedule"] == "30 1 * * *"
    assert spec["timeZone"] == "Europe/Paris"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["suspend"] is True
    assert spec["startingDeadlineSeconds"] == 300
    assert spec["successfulJobsHistoryLimit"] == 5
    assert spec["failedJobsHistoryLimit"] == 2
    assert len(cron["metadata"]["name"]) <= 52  # CronJob names leave 11 for the Job suffix


def test_existing_secrets(helm: Helm) -> None:
    kinds = by_kind(helm.template(VALUE_SETS["existing-secrets"]))
    assert "Secret" not in kinds
    env = {e["name"]: e for e in coordinator_pod_spec(docs_of(kinds))["containers"][0]["env"]}
    assert env["AIONVISION_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "aion-key",
        "key": "token",
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "minio-creds",
        "key": "AWS_SECRET_ACCESS_KEY",
    }


def test_chart_made_s3_secret_and_settings(helm: Helm) -> None:
    kinds = by_kind(helm.template(VALUE_SETS["everything"]))
    secrets = {s["metadata"]["name"]: s for s in kinds["Secret"]}
    assert set(secrets) == {"nightly-aion-ingest-api", "nightly-aion-ingest-s3"}
    assert set(secrets["nightly-aion-ingest-s3"]["data"]) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    data = kinds["ConfigMap"][0]["data"]
    assert data["INGEST_WORKER__CONCURRENCY"] == "32"
    assert data["INGEST_KUBERNETES__MAX_FAILED_INDEXES"] == "5"
    assert (
        data["INGEST_KUBERNETES__RESOURCES"] == '{"limits":{"memory":"2Gi"},"requests":{"cpu":"2"}}'
    )
    assert data["AWS_ENDPOINT_URL"] == "https://minio.example:9000"
    (job,) = kinds["Job"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "ghcr.io/aionvision/aion-ingest@sha256:" + "a" * 64
    )
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == [
        "--run-id",
        "migration-2024",
    ]
    sa = kinds["ServiceAccount"][0]
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/ingest"
    }


def test_rbac_is_least_privilege_and_switchable(helm: Helm) -> None:
    kinds = by_kind(helm.template(BASE))
    (role,) = kinds["Role"]
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("batch",), ("jobs",)): {"create", "get", "list", "watch", "delete"},
        (("",), ("pods",)): {"get", "list", "watch"},
    }
    assert "*" not in str(role["rules"])
    (binding,) = kinds["RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "nightly-aion-ingest", "namespace": "imports"}
    ]
    off = by_kind(helm.template(VALUE_SETS["rbac-off"]))
    assert not {"Role", "RoleBinding", "ServiceAccount"} & set(off)
    assert coordinator_pod_spec(docs_of(off))["serviceAccountName"] == "ingest-sa"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (merge(BASE, {"bogus": 1}), "bogus"),
        (merge(BASE, {"workers": {"paralelism": 3}}), "paralelism"),
        (merge(BASE, {"cron": {"concurrencyPolicy": "Allow"}}), "concurrencyPolicy"),
        ({"api": {"key": "k"}, "run": {"state": "s3://s/p"}}, "source"),
        (merge(BASE, {"run": {"state": "/local/path"}}), "state"),
        (merge(BASE, {"api": {"key": ""}}), "api.key or api.existingSecret"),
        (merge(BASE, {"serviceAccount": {"create": False}}), "serviceAccount.name"),
    ],
)
def test_bad_values_are_refused(helm: Helm, values: dict[str, Any], message: str) -> None:
    proc = helm.run("template", "nightly", str(CHART), values=values)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_notes_say_how_to_follow_and_where_the_report_is(helm: Helm) -> None:
    for mode, needle in (
        ("job", "logs -f job/nightly-aion-ingest"),
        ("cron", "create job --from=cronjob"),
    ):
        proc = helm.run(
            "install",
            "nightly",
            str(CHART),
            "--dry-run=client",
            "--namespace",
            "imports",
            values=merge(BASE, {"mode": mode}),
        )
        assert proc.returncode == 0, proc.stderr
        notes = proc.stdout.split("NOTES:", 1)[1]
        assert needle in notes
        assert "s3://ingest-state/prod/runs/<run id>/report.json" in notes
