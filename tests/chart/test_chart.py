"""The Helm chart: lint, render for each mode and switch, Kubernetes schemas 1.29 to 1.37."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from ingest.errors import ExitCode
from ingest.orchestration.kubernetes import run_id_for_job
from tests.chart.conftest import BASE, CHART, KUBE_VERSIONS, Helm, by_kind, docs_of, merge

CI_VALUES = CHART / "ci"
# chart-testing's value sets (ci/<name>-values.yaml), rendered and validated here too.
VALUE_SETS: dict[str, dict[str, Any]] = {
    path.name.removesuffix("-values.yaml"): yaml.safe_load(path.read_text())
    for path in sorted(CI_VALUES.glob("*-values.yaml"))
}


def test_the_ci_value_sets_are_there() -> None:
    assert set(VALUE_SETS) == {"default", "cron", "existing-secrets", "rbac-off", "everything"}
    assert VALUE_SETS["default"] == BASE


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
        "Pod",  # the helm test preflight
        "Role",
        "RoleBinding",
        "Secret",
        "ServiceAccount",
    ]
    (job,) = kinds["Job"]
    # The revision is in the Job's name (helm upgrade makes a new Job), not in the run id.
    assert job["metadata"]["name"] == "nightly-aion-ingest-r1"
    assert job["metadata"]["annotations"] == {"aion-ingest/run-id": "nightly-aion-ingest"}
    assert job["spec"]["backoffLimit"] == 3
    assert job["spec"]["activeDeadlineSeconds"] == 280800
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "nightly-aion-ingest"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert job["spec"]["template"]["metadata"]["annotations"]["aion-ingest/workers-owner"] == (
        "ConfigMap/nightly-aion-ingest"
    )
    (c,) = pod["containers"]
    assert c["args"] == ["coordinate", "s3://photos/2024/", "--run-id", "nightly-aion-ingest"]
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
    assert config["data"]["INGEST_KUBERNETES__MAX_FAILED_INDEXES"] == "10"
    assert config["data"]["INGEST_KUBERNETES__ACTIVE_DEADLINE_SECONDS"] == "259200"
    assert "INGEST_KUBERNETES__SERVICE_ACCOUNT" not in config["data"]  # the coordinator's
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
    # each scheduled Job's name is its run id: no --run-id; the ledger is the release's name
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["coordinate", "s3://photos/2024/"]
    (config,) = kinds["ConfigMap"]
    assert config["data"]["INGEST_PLAN__LEDGER"] == cron["metadata"]["name"]
    assert config["data"]["INGEST_PLAN__CHANGED"] == "upload"


def test_ledger_values(helm: Helm) -> None:
    (job_mode,) = by_kind(helm.template(BASE))["ConfigMap"]
    assert "INGEST_PLAN__LEDGER" not in job_mode["data"]  # job mode: no ledger by default
    values = merge(BASE, {"run": {"ledger": "photos.nightly", "changed": "skip"}})
    (config,) = by_kind(helm.template(values))["ConfigMap"]
    assert config["data"]["INGEST_PLAN__LEDGER"] == "photos.nightly"
    assert config["data"]["INGEST_PLAN__CHANGED"] == "skip"
    cron = merge(VALUE_SETS["cron"], {"run": {"ledger": "mine"}})
    (config,) = by_kind(helm.template(cron))["ConfigMap"]
    assert config["data"]["INGEST_PLAN__LEDGER"] == "mine"


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


def test_rbac_binds_the_role_and_is_switchable(helm: Helm) -> None:
    kinds = by_kind(helm.template(BASE))
    (role,) = kinds["Role"]
    assert "*" not in str(role["rules"])
    (configmaps,) = [r for r in role["rules"] if r["resources"] == ["configmaps"]]
    assert configmaps["resourceNames"] == ["nightly-aion-ingest"]  # the release's, only
    (binding,) = kinds["RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "nightly-aion-ingest", "namespace": "imports"}
    ]
    off = by_kind(helm.template(VALUE_SETS["rbac-off"]))
    assert not {"Role", "RoleBinding", "ServiceAccount"} & set(off)
    assert coordinator_pod_spec(docs_of(off))["serviceAccountName"] == "ingest-sa"


def test_workers_service_account_has_no_role(helm: Helm) -> None:
    kinds = by_kind(helm.template(VALUE_SETS["everything"]))
    accounts = {sa["metadata"]["name"]: sa for sa in kinds["ServiceAccount"]}
    assert set(accounts) == {"nightly-aion-ingest", "nightly-aion-ingest-worker"}
    worker = accounts["nightly-aion-ingest-worker"]
    assert worker["automountServiceAccountToken"] is False
    assert worker["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/ingest-workers"
    }
    assert [b["subjects"][0]["name"] for b in kinds["RoleBinding"]] == ["nightly-aion-ingest"]
    data = kinds["ConfigMap"][0]["data"]
    assert data["INGEST_KUBERNETES__SERVICE_ACCOUNT"] == "nightly-aion-ingest-worker"
    named = merge(BASE, {"workers": {"serviceAccount": {"name": "uploader"}}})
    kinds = by_kind(helm.template(named))
    assert len(kinds["ServiceAccount"]) == 1
    assert kinds["ConfigMap"][0]["data"]["INGEST_KUBERNETES__SERVICE_ACCOUNT"] == "uploader"


def test_coordinator_job_retries_crashes_only(helm: Helm) -> None:
    """Verdicts (2 configuration, 3 fatal, 4 run failed) end the Job; evictions don't count."""
    for values in VALUE_SETS.values():
        kinds = by_kind(helm.template(values))
        spec = (
            kinds["CronJob"][0]["spec"]["jobTemplate"]["spec"]
            if "CronJob" in kinds
            else kinds["Job"][0]["spec"]
        )
        assert spec["podFailurePolicy"] == {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": "coordinator",
                        "operator": "In",
                        # ExitCode.USAGE, ExitCode.FATAL and the coordinator's "run ended,
                        # some shards failed" (ExitCode.RUN_FAILED).
                        "values": sorted(
                            {int(ExitCode.USAGE), int(ExitCode.FATAL), int(ExitCode.RUN_FAILED)}
                        ),
                    },
                },
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        }
        assert spec["template"]["spec"]["containers"][0]["name"] == "coordinator"
        assert 1 <= spec["backoffLimit"] <= 6


@pytest.mark.parametrize(
    "release",
    ["nightly", "aion-ingest", "a-very-long-release-name-for-a-migration", "x" * 53],
)
def test_run_id_is_the_coordinators_and_ignores_the_revision(helm: Helm, release: str) -> None:
    """The chart computes the default run id as ``run_id_for_job`` does from the full name."""
    kinds = by_kind(helm.template(BASE, release=release))
    (job,) = kinds["Job"]
    fullname = kinds["ConfigMap"][0]["metadata"]["name"]
    run_id = job["spec"]["template"]["spec"]["containers"][0]["args"][-1]
    assert run_id == run_id_for_job(fullname)
    assert job["metadata"]["name"] == f"{fullname}-r1"
    assert len(job["metadata"]["name"]) <= 63


def test_extra_env_volumes_and_scheduling(helm: Helm) -> None:
    kinds = by_kind(helm.template(VALUE_SETS["everything"]))
    pod = coordinator_pod_spec(docs_of(kinds))
    (c,) = pod["containers"]
    assert c["env"][-1] == {"name": "AWS_CA_BUNDLE", "value": "/etc/ingest-ca/ca.crt"}
    assert c["envFrom"][1:] == [{"secretRef": {"name": "proxy-settings"}}]
    assert c["volumeMounts"][1:] == [
        {"name": "ca", "mountPath": "/etc/ingest-ca", "readOnly": True}
    ]
    assert pod["volumes"] == [
        {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
        {"name": "ca", "configMap": {"name": "minio-ca"}},
    ]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert pod["terminationGracePeriodSeconds"] == 90
    template = kinds["Job"][0]["spec"]["template"]["metadata"]
    assert template["labels"]["azure.workload.identity/use"] == "true"
    assert template["annotations"]["sidecar.istio.io/inject"] == "false"
    off = by_kind(helm.template(VALUE_SETS["existing-secrets"]))
    assert coordinator_pod_spec(docs_of(off))["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert "activeDeadlineSeconds" not in off["Job"][0]["spec"]


def test_preflight_is_a_helm_test_of_the_source(helm: Helm) -> None:
    kinds = by_kind(helm.template(VALUE_SETS["everything"]))
    (pod,) = kinds["Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    (c,) = spec["containers"]
    assert c["args"] == [
        *("plan", "s3://photos/2024/", "--dry-run", "--limit", "50"),
        *("--include", "*.jpg"),
    ]
    coordinator = coordinator_pod_spec(docs_of(kinds))
    # the coordinator's identity, settings, secrets, volumes and scheduling
    for key in ("env", "envFrom", "volumeMounts", "securityContext", "image"):
        assert c[key] == coordinator["containers"][0][key], key
    for key in ("serviceAccountName", "volumes", "nodeSelector", "tolerations", "securityContext"):
        assert spec[key] == coordinator[key], key
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert "Pod" not in by_kind(helm.template(VALUE_SETS["existing-secrets"]))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (merge(BASE, {"bogus": 1}), "bogus"),
        (merge(BASE, {"workers": {"paralelism": 3}}), "paralelism"),
        (merge(BASE, {"cron": {"concurrencyPolicy": "Allow"}}), "concurrencyPolicy"),
        (merge(BASE, {"mode": "cron", "run": {"id": "first"}}), "/run/id"),
        (merge(BASE, {"run": {"ledger": "no spaces"}}), "ledger"),
        (merge(BASE, {"run": {"changed": "replace"}}), "changed"),
        ({"api": {"key": "k"}, "run": {"state": "s3://s/p"}}, "source"),
        (merge(BASE, {"run": {"state": "/local/path"}}), "state"),
        (merge(BASE, {"api": {"key": ""}}), "api.key or api.existingSecret"),
        (merge(BASE, {"serviceAccount": {"create": False}}), "serviceAccount.name"),
        (merge(BASE, {"tmp": {"sizeLimit": "lots"}}), "sizeLimit"),
        *(
            (merge(BASE, {"run": {"settings": {name: "x"}}}), f"/run/settings/{name}")
            for name in (
                "AIONVISION_API_KEY",
                "INGEST_API__KEY",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN",
                "INGEST_SOURCE__SECRET",
                "AWS_PROXY_PASSWORD",
            )
        ),
    ],
)
def test_bad_values_are_refused(helm: Helm, values: dict[str, Any], message: str) -> None:
    proc = helm.run("template", "nightly", str(CHART), values=values)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_plain_settings_are_accepted(helm: Helm) -> None:
    settings = {
        "INGEST_SOURCE__MANIFEST_KEYS": "k",
        "AWS_REGION": "eu-west-1",
        "AWS_MAX_ATTEMPTS": 5,
    }
    docs = helm.template(merge(BASE, {"run": {"settings": settings}}))
    assert by_kind(docs)["ConfigMap"][0]["data"]["AWS_MAX_ATTEMPTS"] == "5"


def test_notes_say_how_to_follow_and_where_the_report_is(helm: Helm) -> None:
    for mode, needle in (
        ("job", "logs -f job/nightly-aion-ingest-r1"),
        ("job", "helm upgrade nightly"),
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
        assert "install again" not in notes  # helm refuses while the release exists
