"""The chart's metrics objects: rendered, checked against the prometheus-operator CRD
schemas, and the alerts proven by promtool (each fires, and does not, on made-up series)."""

from __future__ import annotations

import copy
import json
import pathlib
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart.conftest import BASE, CHART, Helm, by_kind, merge
from tests.fixtures.prometheus import binary
from tests.metrics.crds import crd_schema

METRICS = {"metrics": {"enabled": True, "pushgatewayUrl": "http://pushgateway.monitoring:9091"}}
CRON = {"mode": "cron", "cron": {"schedule": "0 2 * * *"}}


def render(helm: Helm, extra: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return by_kind(helm.template(merge(BASE, extra)))


def rules_of(kinds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    (rule,) = kinds["PrometheusRule"]
    spec: dict[str, Any] = rule["spec"]
    return spec


def test_metrics_off_renders_no_metrics_objects(helm: Helm) -> None:
    kinds = render(helm, {})
    assert not {"PodMonitor", "PrometheusRule"} & set(kinds)
    assert not any(c["metadata"]["name"].endswith("-dashboard") for c in kinds["ConfigMap"])


@pytest.mark.parametrize("mode", ["job", "cron"])
def test_podmonitor_and_rule_validate_against_the_crd_schemas(helm: Helm, mode: str) -> None:
    kinds = render(helm, merge(METRICS, CRON if mode == "cron" else {}))
    for kind in ("PodMonitor", "PrometheusRule"):
        (doc,) = kinds[kind]
        jsonschema.validate(doc, crd_schema(kind))
    (pm,) = kinds["PodMonitor"]
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert pm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "nightly"
    alerts = {r["alert"] for g in rules_of(kinds)["groups"] for r in g["rules"] if "alert" in r}
    assert ("AionIngestNoRecentSuccess" in alerts) == (mode == "cron")
    for group in rules_of(kinds)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert len(rule["annotations"]["description"]) > 80, rule["alert"]


def test_the_crd_schemas_refuse_a_misspelt_key_and_a_bad_duration(helm: Helm) -> None:
    """The upstream schemas bite: what a template could get wrong fails validation."""
    kinds = render(helm, METRICS)
    (pm,) = kinds["PodMonitor"]
    (rule,) = kinds["PrometheusRule"]
    bad = copy.deepcopy(pm)
    bad["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        jsonschema.validate(bad, crd_schema("PodMonitor"))
    bad = copy.deepcopy(pm)
    bad["spec"]["podMetricsEndpoints"][0]["interval"] = "soon"
    with pytest.raises(jsonschema.ValidationError, match="soon"):
        jsonschema.validate(bad, crd_schema("PodMonitor"))
    bad = copy.deepcopy(rule)
    bad["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    with pytest.raises(jsonschema.ValidationError, match="5 minutes"):
        jsonschema.validate(bad, crd_schema("PrometheusRule"))


def test_a_bad_metrics_value_is_refused_by_the_schema(helm: Helm) -> None:
    values = merge(BASE, {"metrics": {"enabled": True, "podMonitor": {"interval": "soon"}}})
    proc = helm.run("template", "nightly", str(CHART), values=values)
    assert proc.returncode != 0
    assert "interval" in proc.stderr


def test_dashboard_configmap_carries_the_sidecar_label_and_the_json(helm: Helm) -> None:
    kinds = render(helm, METRICS)
    (cm,) = [c for c in kinds["ConfigMap"] if c["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["aion-ingest.json"])
    assert dashboard["title"] and dashboard["panels"]
    custom = render(helm, merge(METRICS, {"metrics": {"dashboard": {"labels": {"team": "x"}}}}))
    (cm,) = [c for c in custom["ConfigMap"] if c["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["team"] == "x"


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    all_labels = {"namespace": "imports", "release": "nightly", **labels}
    text = ",".join(f'{k}="{v}"' for k, v in all_labels.items())
    return {"series": f"{name}{{{text}}}", "values": values}


def _alert(name: str, summary: str, **labels: str) -> dict[str, Any]:
    """An expected alert; its description is filled in from the rendered rule."""
    base = {"namespace": "imports", "release": "nightly"} if "run_id" in labels else {}
    return {
        "exp_labels": {**base, **labels},
        "exp_annotations": {"summary": summary},
        "_name": name,
    }


def _cases(
    name: str, quiet: str | None, fires: str, summary: str, **labels: str
) -> list[dict[str, Any]]:
    """promtool cases: alert ``name`` silent at ``quiet`` (if given), firing at ``fires``."""
    silent = [{"eval_time": quiet, "alertname": name, "exp_alerts": []}] if quiet else []
    firing = {
        "eval_time": fires,
        "alertname": name,
        "exp_alerts": [_alert(name, summary, **labels)],
    }
    return [*silent, firing]


def alert_tests() -> list[dict[str, Any]]:
    """Each alert once firing and once (or more) not, over 60 one-minute samples."""
    ok = "aion_ingest_objects_total"
    http = "aion_ingest_http_requests_total"
    batch = "/user-files/upload/stream-batch"
    last = "aion_ingest_run_last_success_timestamp_seconds"
    series = [
        # r1: uploading, stuck at 100 objects; r2: uploading and progressing
        _series("aion_ingest_run_phase", "1x60", run_id="r1", phase="uploading"),
        _series("aion_ingest_run_objects_done", "100x60", run_id="r1"),
        _series("aion_ingest_run_phase", "1x60", run_id="r2", phase="uploading"),
        _series("aion_ingest_run_objects_done", "0+10x60", run_id="r2"),
        # failures: r1 10% of 100/min; r2 50% of 2/min (below the volume guard); r3 1%
        _series(ok, "0+10x60", run_id="r1", shard="0", outcome="failed", route="batch"),
        _series(ok, "0+90x60", run_id="r1", shard="1", outcome="uploaded", route="batch"),
        _series(ok, "0+1x60", run_id="r2", shard="0", outcome="failed", route="batch"),
        _series(ok, "0+1x60", run_id="r2", shard="0", outcome="uploaded", route="batch"),
        _series(ok, "0+1x60", run_id="r3", shard="0", outcome="failed", route="stream"),
        _series(ok, "0+99x60", run_id="r3", shard="0", outcome="uploaded", route="stream"),
        # 429s: r1 20% of its API requests; r2 5%; source reads do not count
        _series(http, "0+20x60", run_id="r1", shard="0", endpoint=batch, code="429"),
        _series(http, "0+80x60", run_id="r1", shard="0", endpoint=batch, code="2xx"),
        _series(http, "0+5x60", run_id="r2", shard="0", endpoint=batch, code="429"),
        _series(http, "0+95x60", run_id="r2", shard="0", endpoint=batch, code="2xx"),
        _series(http, "0+900x60", run_id="r1", shard="0", endpoint="s3:GetObject", code="2xx"),
        # quota: r1 none left; r2 100 left for 500 objects to go; r3 plenty
        _series("aion_ingest_quota_available_files", "0x60", run_id="r1"),
        _series("aion_ingest_quota_available_files", "100x60", run_id="r2"),
        _series("aion_ingest_run_objects_planned", "1000x60", run_id="r2"),
        _series("aion_ingest_quota_available_files", "10000x60", run_id="r3"),
        _series("aion_ingest_run_objects_planned", "1000x60", run_id="r3"),
        _series("aion_ingest_run_objects_done", "500x60", run_id="r3"),
    ]
    late = "40m"
    return [
        {
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                *_cases(
                    "AionIngestRunStalled",
                    "20m",
                    late,
                    "Run r1 made no progress for 30 minutes",
                    run_id="r1",
                    severity="critical",
                ),
                *_cases(
                    "AionIngestHighFailureRatio",
                    "3m",
                    late,
                    "10% of run r1's objects failed in 15 minutes (over 0.05)",
                    run_id="r1",
                    severity="warning",
                ),
                *_cases(
                    "AionIngestRateLimitStorm",
                    "8m",
                    late,
                    "20% of run r1's API requests are answered 429 (over 0.1)",
                    run_id="r1",
                    severity="warning",
                ),
                *_cases(
                    "AionIngestQuotaExhausted",
                    None,
                    late,
                    "The API key's upload quota is exhausted (run r1)",
                    run_id="r1",
                    severity="critical",
                ),
                *_cases(
                    "AionIngestQuotaWillRunOut",
                    None,
                    late,
                    "Run r2 has more objects left than the quota allows",
                    run_id="r2",
                    severity="warning",
                ),
            ],
        },
        {
            "interval": "1h",
            "input_series": [
                {"series": f'{last}{{release="nightly",run_id="c1"}}', "values": "3600x40"},
                {"series": f'{last}{{release="other",run_id="c9"}}', "values": "0x40"},
            ],
            "alert_rule_test": _cases(
                "AionIngestNoRecentSuccess",
                "20h",
                "28h",
                "No successful scheduled import of nightly for 26 hours",
                release="nightly",
                severity="warning",
            ),
        },
    ]


def _with_descriptions(test: dict[str, Any], descriptions: dict[str, str]) -> dict[str, Any]:
    """promtool compares every annotation: add each rule's (static) description."""
    for case in test.get("alert_rule_test", []):
        for exp in case["exp_alerts"]:
            exp["exp_annotations"]["description"] = descriptions[exp.pop("_name")]
    return test


def test_promtool_checks_the_rules_and_every_alert_fires_and_stays_quiet(
    helm: Helm, tmp_path: pathlib.Path
) -> None:
    kinds = render(helm, merge(METRICS, CRON))
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rules_of(kinds)))
    promtool = binary("promtool")
    check = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    descriptions = {
        r["alert"]: r["annotations"]["description"]
        for g in rules_of(kinds)["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    tests = tmp_path / "rules_test.yaml"
    tests.write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yaml"],
                "evaluation_interval": "1m",
                "tests": [_with_descriptions(t, descriptions) for t in alert_tests()],
            }
        )
    )
    run = subprocess.run(
        [promtool, "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # every alert of the rule file is exercised here, firing at least once
    alerts = {r["alert"] for g in rules_of(kinds)["groups"] for r in g["rules"] if "alert" in r}
    fired = {
        case["alertname"]
        for t in alert_tests()
        for case in t["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == alerts


def test_metrics_on_sets_the_port_and_settings_that_workers_inherit(helm: Helm) -> None:
    from ingest.launch.jobspec import CoordinatorPodInfo, build_worker_job
    from ingest.settings import KubernetesSettings
    from tests.chart.test_worker_job import coordinator_pod

    values = merge(BASE, merge(METRICS, {"metrics": {"port": 9555}}))
    docs = helm.template(values)
    (config,) = [
        c for c in by_kind(docs)["ConfigMap"] if not c["metadata"]["name"].endswith("-dashboard")
    ]
    data = config["data"]
    assert data["INGEST_METRICS__PORT"] == "9555"
    assert data["INGEST_METRICS__ADDRESS"] == "0.0.0.0"
    assert data["INGEST_METRICS__RELEASE"] == "nightly"
    assert data["INGEST_METRICS__PUSHGATEWAY_URL"] == "http://pushgateway.monitoring:9091"
    pod = coordinator_pod(docs)
    (port,) = pod["spec"]["containers"][0]["ports"]
    assert port == {"name": "metrics", "containerPort": 9555, "protocol": "TCP"}
    info = CoordinatorPodInfo.from_pod(pod)
    job = build_worker_job(info, KubernetesSettings(), run_id="r1", state_uri="s3://b/p", shards=2)
    (worker,) = job["spec"]["template"]["spec"]["containers"]
    assert worker["ports"] == [port]
    # off: no port, no metrics settings
    docs = helm.template(BASE)
    assert "ports" not in coordinator_pod(docs)["spec"]["containers"][0]
    assert not any(k.startswith("INGEST_METRICS__") for k in by_kind(docs)["ConfigMap"][0]["data"])
