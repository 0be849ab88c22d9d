"""Inputs that once broke a whole run: they now become per-item outcomes (issue 13)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.run.helpers import make_source, run_env, start

pytestmark = pytest.mark.timeout(240)


def _report_rows(state: Path, run_id: str) -> list[dict[str, str]]:
    text = (state / "runs" / run_id / "report.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_a_file_name_with_invalid_utf8_is_planned_and_uploaded(
    tmp_path: Path, sandbox: Any
) -> None:
    src = tmp_path / "src"
    make_source(src, 4, seed=9)
    good = next(p for p in src.rglob("*.png"))
    bad = os.path.join(os.fsencode(src), b"bad-\xff\xfe.png")
    with open(bad, "wb") as f:
        f.write(good.read_bytes())
    state = tmp_path / "state"
    env = run_env(tmp_path, sandbox)
    proc = start(["run", str(src), "--state", f"file://{state}", "--run-id", "r-utf8"], env)
    _, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    rows = _report_rows(state, "r-utf8")
    assert len(rows) == 5
    bad_rows = [r for r in rows if r["key"].startswith("bad-")]
    # Undecodable bytes are shown as \\udcXX escapes in the CSV (valid UTF-8).
    assert [r["key"] for r in bad_rows] == ["bad-\\udcff\\udcfe.png"]
    assert bad_rows[0]["outcome"] in ("uploaded", "skipped_duplicate"), bad_rows[0]
    report = json.loads((state / "runs" / "r-utf8" / "report.json").read_text())
    assert report["by_outcome"]["failed"] == 0
