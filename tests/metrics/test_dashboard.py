"""The dashboard is generated from code; its queries and the rules name only real metrics."""

from __future__ import annotations

import json

from ingest.metrics import names
from tests.chart.conftest import BASE, CHART, Helm, merge
from tests.metrics.promql import (
    DASHBOARD_JSON,
    dashboard_module,
    dashboard_queries,
    metric_names,
    rule_groups,
    variable_queries,
)


def test_committed_dashboard_equals_the_generated_one() -> None:
    generated = dashboard_module().render()
    assert DASHBOARD_JSON.read_text() == generated, "run `make dashboard` and commit the JSON"


def test_dashboard_has_the_panels_and_variables_users_look_for() -> None:
    dashboard = json.loads(DASHBOARD_JSON.read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in (
        "Progress",
        "ETA",
        "Objects/s by outcome",
        "Bytes/s by route",
        "Failure ratio",
        "Failures by reason",
        "Latency by endpoint (p50, p95, p99)",
        "Requests by status code",
        "429 ratio",
        "Pacing (requests/s, all workers)",
        "Retries by cause",
        "In flight",
        "Queue depths",
        "Shards",
        "Worker pods and shards",
        "Quota left (files)",
    ):
        assert wanted in titles
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"namespace", "release", "run_id"} <= variables


def test_every_expression_parses_and_names_only_exported_or_recorded_metrics(helm: Helm) -> None:
    values = merge(
        BASE, {"metrics": {"enabled": True}, "mode": "cron", "cron": {"schedule": "0 2 * * *"}}
    )
    proc = helm.run("template", "nightly", str(CHART), values=values)
    assert proc.returncode == 0, proc.stderr
    groups = rule_groups(proc)
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    rule_exprs = [r["expr"] for g in groups for r in g["rules"]]
    dashboard = json.loads(DASHBOARD_JSON.read_text())
    kube = set(dashboard_module().KUBE_STATE_METRICS)
    allowed = names.EXPORTED | recorded
    used: set[str] = set()
    for expr in rule_exprs:
        found = metric_names(expr)
        assert found <= allowed, (expr, found - allowed)
        used |= found
    for expr in [*dashboard_queries(dashboard), *variable_queries(dashboard)]:
        found = metric_names(expr)
        assert found <= allowed | kube, (expr, found - allowed - kube)
        used |= found
    # the kube-state-metrics names are really used, and every recorded series too
    assert kube <= used
    assert recorded <= used
