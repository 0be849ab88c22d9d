#!/usr/bin/env python3
"""Write the values table of charts/aion-ingest/README.md from values.yaml's comments.

The comment block right above a key (no blank line between) is its description. A map
whose keys carry no comment of their own is one row (its default shown whole, e.g.
``podSecurityContext``); otherwise each documented key is a row. The table goes between
the README's ``<!-- values:start -->`` and ``<!-- values:end -->`` markers.

    python scripts/chart_readme.py          # rewrite the README
    python scripts/chart_readme.py --check  # exit 1 when the README is out of date
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import sys
from typing import Any

import yaml

CHART = pathlib.Path(__file__).resolve().parents[1] / "charts" / "aion-ingest"
START, END = "<!-- values:start -->", "<!-- values:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?: .*)?$")


@dataclasses.dataclass
class Row:
    path: str
    description: str
    documented_children: bool = False


def _rows(text: str) -> list[Row]:
    """Every key of values.yaml, in file order, with its comment block."""
    rows: list[Row] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            comment = []
            continue
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if match is None:  # a list item or a continued value
            comment = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [match["key"]])
        rows.append(Row(path, " ".join(comment)))
        stack.append((indent, match["key"]))
        comment = []
    return rows


def _value(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    return node


def table(chart: pathlib.Path = CHART) -> str:
    """The Markdown table of every value."""
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text)
    rows = _rows(text)
    by_path = {r.path: r for r in rows}
    for row in rows:
        if row.description and "." in row.path:
            parent = row.path.rsplit(".", 1)[0]
            while parent:
                by_path[parent].documented_children = True
                parent = parent.rsplit(".", 1)[0] if "." in parent else ""
    out = ["| value | default | description |", "| --- | --- | --- |"]
    hidden: list[str] = []  # maps shown whole: their keys are not rows
    for row in rows:
        if any(row.path.startswith(h + ".") for h in hidden):
            continue
        value = _value(values, row.path)
        if isinstance(value, dict) and value and row.documented_children:
            continue  # a section: its keys are the rows
        if isinstance(value, dict) and value:
            hidden.append(row.path)
        default = json.dumps(value, separators=(",", ":"))
        description = row.description.replace("|", "\\|")
        out.append(f"| `{row.path}` | `{default}` | {description} |")
    return "\n".join(out) + "\n"


def undocumented(chart: pathlib.Path = CHART) -> list[str]:
    """Rows of the table without a description."""
    return [line.split("`")[1] for line in table(chart).splitlines()[2:] if line.endswith("|  |")]


def render(readme: str, chart: pathlib.Path = CHART) -> str:
    """``readme`` with its values table replaced by the current one."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table(chart)}{END}{tail}"


def main(argv: list[str]) -> int:
    path = CHART / "README.md"
    current = path.read_text()
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            print(f"{path} is out of date: run python scripts/chart_readme.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
