"""The chart's Role grants exactly what the code calls, derived from the code itself.

Every call the launcher makes on the official client's BatchV1Api / CoreV1Api is found in
the source (``ast``); the client's own request builder (``_<method>_serialize``) says which
HTTP method and path it sends, hence the RBAC verb and resource; a list method handed to
``watch.stream`` is a ``watch``. A new call in the code without its grant (or a grant
nothing calls) fails here.
"""

from __future__ import annotations

import ast
import inspect
import re
from typing import Any

import kubernetes.client

from tests.chart.conftest import BASE, ROOT, Helm, by_kind

APIS = (kubernetes.client.BatchV1Api, kubernetes.client.CoreV1Api)
# Every module that talks to the Kubernetes API (the only importers of ``kubernetes``).
CALLERS = sorted(
    path
    for path in (ROOT / "ingest").rglob("*.py")
    if re.search(r"^\s*(import|from) kubernetes\b", path.read_text(), re.M)
)
_PATH = re.compile(
    r"^/apis?/(?:(?P<group>[a-z.]+)/)?v\w+/(?:namespaces/\{namespace\}/)?(?P<rest>.+)$"
)


def request_of(method: str) -> tuple[str, str]:
    """(HTTP method, path template) the client sends for API method ``method``."""
    for api in APIS:
        serialize = getattr(api, f"_{method}_serialize", None)
        if serialize is not None:
            src = inspect.getsource(serialize)
            http = re.search(r"method='(\w+)'", src)
            path = re.search(r"resource_path='([^']+)'", src)
            assert http and path, method
            return http.group(1), path.group(1)
    raise AssertionError(f"{method} is not a BatchV1Api or CoreV1Api method")


def grant(method: str, watch: bool = False) -> tuple[str, str, str]:
    """(API group, resource, verb) that calling ``method`` needs."""
    http, path = request_of(method)
    match = _PATH.match(path)
    assert match, path
    parts = match["rest"].split("/")  # jobs | jobs/{name} | jobs/{name}/status
    resource = parts[0] + (f"/{parts[2]}" if len(parts) > 2 else "")
    named = len(parts) > 1
    verb = {
        ("GET", True): "get",
        ("GET", False): "watch" if watch else "list",
        ("POST", False): "create",
        ("DELETE", True): "delete",
        ("DELETE", False): "deletecollection",
        ("PATCH", True): "patch",
        ("PUT", True): "update",
    }[(http, named)]
    return match["group"] or "", resource, verb


def api_methods() -> set[str]:
    """The client's API calls (each has a request builder; ``close`` and the like do not)."""
    return {
        m
        for api in APIS
        for m in dir(api)
        if not m.startswith("_") and hasattr(api, f"_{m}_serialize")
    }


def calls_in_code() -> set[tuple[str, str, str]]:
    """Every grant the code's calls need."""
    methods = api_methods()
    needed: set[tuple[str, str, str]] = set()
    for path in CALLERS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in methods:
                needed.add(grant(node.attr))
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "stream"
                and node.args
                and isinstance(node.args[0], ast.Attribute)
                and node.args[0].attr in methods
            ):
                needed.add(grant(node.args[0].attr, watch=True))
    return needed


def role_grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_callers_are_found() -> None:
    assert [p.relative_to(ROOT).as_posix() for p in CALLERS] == ["ingest/launch/kubernetes.py"]
    assert grant("read_namespaced_job") == ("batch", "jobs", "get")
    assert grant("list_namespaced_job", watch=True) == ("batch", "jobs", "watch")
    assert grant("patch_namespaced_job_status") == ("batch", "jobs/status", "patch")
    assert grant("read_namespaced_config_map") == ("", "configmaps", "get")


def test_role_is_exactly_what_the_code_calls(helm: Helm) -> None:
    (role,) = by_kind(helm.template(BASE))["Role"]
    needed = calls_in_code()
    assert ("batch", "jobs", "watch") in needed  # the watch is seen, not assumed
    assert role_grants(role) == needed
