"""Every PromQL expression of the chart's rules and the dashboard, and the names they use."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

import promql_parser
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD_JSON = ROOT / "charts/aion-ingest/dashboards/aion-ingest.json"

# Grafana's own variables, replaced by what a query of the last few minutes would use.
GRAFANA_VARS = {"$__rate_interval": "1m", "$namespace": ".*", "$release": ".*", "$run_id": ".*"}


def dashboard_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aion_dashboard", ROOT / "scripts/dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every target's expression, Grafana's variables substituted."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            out.append(expr)
    return out


def rule_groups(helm_template: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    for doc in yaml.safe_load_all(helm_template.stdout):
        if doc and doc["kind"] == "PrometheusRule":
            groups: list[dict[str, Any]] = doc["spec"]["groups"]
            return groups
    raise AssertionError("no PrometheusRule rendered")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (parsing it: a syntax error raises)."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    """The selectors inside the variables' label_values(...) queries."""
    out = []
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, str) and (m := re.match(r"label_values\((.*), *\w+\)$", query)):
            expr = m.group(1)
            for name, value in GRAFANA_VARS.items():
                expr = expr.replace(name, value)
            out.append(expr)
    return out
