"""The prometheus-operator CRDs' schemas (tests/metrics/data/prometheus-operator, upstream
files as-is), as JSON Schemas that check what `kubectl apply` checks.

A CRD's ``openAPIV3Schema`` is a structural schema: unknown fields are not an error in it,
the API server prunes them (or refuses them under ``kubectl``'s default strict field
validation). So every object schema that lists its properties, and neither allows other
keys nor keeps unknown fields, gets ``additionalProperties: false`` here: a misspelt key in
a template fails the test instead of vanishing in a cluster. ``metadata`` is ObjectMeta,
which the CRD leaves open; it stays open (but needs a name). Go regex patterns that Python
reads otherwise are rewritten (``_python_pattern``); the files themselves stay as upstream.
"""

from __future__ import annotations

import copy
import functools
import pathlib
from typing import Any

import yaml

DATA = pathlib.Path(__file__).resolve().parent / "data" / "prometheus-operator"
FILES = {
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}


def _python_pattern(pattern: str) -> str:
    """Go's RE2 takes ``^(?i)abc``; Python wants global flags first: ``(?i)^abc``."""
    for flags in ("(?i)",):
        if pattern.startswith("^" + flags):
            return flags + "^" + pattern[len(flags) + 1 :]
    return pattern


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if isinstance(schema.get("pattern"), str):
            out["pattern"] = _python_pattern(schema["pattern"])
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_schema(kind: str, version: str = "v1") -> dict[str, Any]:
    """The JSON Schema of ``kind`` (``PodMonitor``, ``PrometheusRule``) at ``version``."""
    crd = yaml.safe_load((DATA / FILES[kind]).read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema: dict[str, Any] = _strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]))
    # what the API server adds to every object: its identity and a name
    schema["properties"]["metadata"]["required"] = ["name"]
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "spec"})
    schema["properties"]["apiVersion"]["const"] = f"{crd['spec']['group']}/{version}"
    schema["properties"]["kind"]["const"] = kind
    return schema
