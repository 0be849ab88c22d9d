"""The chart's README lists every value with its description, generated from values.yaml."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType
from typing import Any

import yaml

from tests.chart.conftest import CHART, ROOT


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "chart_readme", ROOT / "scripts" / "chart_readme.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(sys.modules[spec.name])
    module = sys.modules[spec.name]
    return module


def leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        out += leaves(value, f"{path}.") if isinstance(value, dict) and value else [path]
    return out


def test_readme_is_in_sync_with_values_yaml() -> None:
    readme = (CHART / "README.md").read_text()
    assert generator().render(readme) == readme, "run: python scripts/chart_readme.py"


def test_every_value_is_a_described_row() -> None:
    gen = generator()
    assert gen.undocumented() == []
    rows = re.findall(r"^\| `([^`]+)` \|", gen.table(), re.M)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for leaf in leaves(values):
        assert any(leaf == row or leaf.startswith(f"{row}.") for row in rows), leaf
    assert "workers.serviceAccount.create" in rows
    assert "podSecurityContext" in rows  # a map without documented keys: one row


def test_a_stale_table_is_found(tmp_path: Any) -> None:
    (tmp_path / "values.yaml").write_text("# The mode.\nmode: job\n")
    gen = generator()
    stale = "intro\n<!-- values:start -->\nold\n<!-- values:end -->\nend\n"
    assert gen.render(stale, tmp_path) == (
        "intro\n<!-- values:start -->\n| value | default | description |\n| --- | --- | --- |\n"
        '| `mode` | `"job"` | The mode. |\n<!-- values:end -->\nend\n'
    )
