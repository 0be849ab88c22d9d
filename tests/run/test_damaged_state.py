"""Damaged or inconsistent state: clear errors, honest reports, and resume repairs
(issue 13, points 14, 15 and 16's deleted part). Real CLI and worker processes."""

from __future__ import annotations

import collections
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.run.helpers import make_source, run_env, start

pytestmark = pytest.mark.timeout(400)


def _rows(state: Path, run_id: str) -> list[dict[str, str]]:
    text = (state / "runs" / run_id / "report.csv").read_text()
    return list(csv.DictReader(io.StringIO(text)))


def _cli(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = start(args, env)
    _, err = proc.communicate(timeout=200)
    assert "Traceback" not in err, err[-3000:]
    return proc.returncode, err


def test_damaged_parts_and_shards_and_lying_checkpoints(tmp_path: Path, sandbox: Any) -> None:
    n = 12
    make_source(tmp_path / "src", n, seed=13)
    state = tmp_path / "state"
    st = ["--state", f"file://{state}"]
    # 'fetch': each shard's last part is the worker's own. With 'list' (the default) the
    # last is the part of the resolved image ids, which `report` writes again from the
    # worker's parts when it is damaged: nothing is lost, so there is nothing to redo.
    env = run_env(tmp_path, sandbox, INGEST_WORKER__BATCH_RESULTS="fetch")
    run = "r-damaged"
    code, err = _cli(["run", str(tmp_path / "src"), *st, "--run-id", run, "--shards", "2"], env)
    assert code == 0, err[-3000:]
    root = state / "runs" / run

    # 14: a truncated results part: `report` writes every other row, names the file and
    # the fix, and exits fatal; `resume` redoes the lost items.
    part = sorted((root / "results" / "00000").glob("part-*.jsonl.gz"))[-1]
    part.write_bytes(part.read_bytes()[: len(part.read_bytes()) // 2])
    code, err = _cli(["report", run, *st], env)
    assert code == 3, err[-3000:]
    assert str(part) in err and f"aion-ingest resume {run}" in err
    rows = _rows(state, run)
    assert len(rows) == n
    assert any(r["reason"] == "not_processed" for r in rows if r["shard"] == "0")
    assert all(r["outcome"] != "failed" for r in rows if r["shard"] == "1")

    code, err = _cli(["resume", run, *st], env)
    assert code == 0, err[-3000:]
    assert {r["outcome"] for r in _rows(state, run)} <= {"uploaded", "skipped_duplicate"}

    # 15 (and 16): shard 1's parts deleted, its checkpoint still says complete: resume
    # checks the claims against the results and redoes the items without one.
    for p in (root / "results" / "00001").glob("part-*"):
        p.unlink()
    # 16: status and the report agree: neither counts shard 1's items as done
    code, err = _cli(["report", run, *st], env)
    assert code == 0, err[-3000:]
    reported = sum(1 for r in _rows(state, run) if r["reason"] != "not_processed")
    proc = start(["status", run, *st, "--json"], env)
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, err[-3000:]
    status = json.loads(out)
    assert status["done"] == reported < n
    assert [s["state"] for s in status["shards"]][1] != "complete"
    code, err = _cli(["resume", run, *st], env)
    assert code == 0, err[-3000:]
    rows = _rows(state, run)
    assert len(rows) == n
    assert {r["outcome"] for r in rows} <= {"uploaded", "skipped_duplicate"}
    names = collections.Counter(f["filename"] for f in sandbox.files())
    assert len(names) == n and max(names.values()) == 1  # redone, never uploaded twice

    # 14: a truncated shard file: the worker stops fatal (not retried as transient), and
    # `report` still writes shard 0's rows and names the damaged shard.
    [shard] = root.glob("shards/*/00001.jsonl.gz")
    shard.write_bytes(shard.read_bytes()[:20])
    code, err = _cli(["work", "--run-id", run, *st, "--index", "1"], env)
    assert code == 3, err[-3000:]
    assert str(shard) in err and "damaged" in err
    code, err = _cli(["report", run, *st], env)
    assert code == 3, err[-3000:]
    assert str(shard) in err
    rows = _rows(state, run)
    assert {r["shard"] for r in rows} == {"0"} and rows


def test_a_damaged_part_of_resolved_ids_is_resolved_again(tmp_path: Path, sandbox: Any) -> None:
    """With the default ``list``, a shard's last results part holds the image ids resolved
    after the workers. Damaged, it loses nothing: the workers' own parts still hold every
    upload, so ``report`` resolves the ids again (exit 0) and names the damaged part."""
    n = 24
    make_source(tmp_path / "src", n, seed=17)
    state = tmp_path / "state"
    st = ["--state", f"file://{state}"]
    env = run_env(tmp_path, sandbox)  # the default BATCH_RESULTS: list
    run = "r-ids"
    code, err = _cli(["run", str(tmp_path / "src"), *st, "--run-id", run, "--shards", "2"], env)
    assert code == 0, err[-3000:]
    ids = {r["key"]: r["image_id"] for r in _rows(state, run)}
    stored = {f["id"] for f in sandbox.files()}
    assert len(ids) == n and set(ids.values()) <= stored

    part = sorted((state / "runs" / run / "results" / "00000").glob("part-*.jsonl.gz"))[-1]
    part.write_bytes(part.read_bytes()[: len(part.read_bytes()) // 2])
    code, err = _cli(["report", run, *st], env)
    assert code == 0, err[-3000:]
    report = json.loads((state / "runs" / run / "report.json").read_text())
    assert report["damaged"] == [part.as_uri()]  # named, in the summary too
    rows = _rows(state, run)
    assert {r["key"]: r["image_id"] for r in rows} == ids
    assert {r["outcome"] for r in rows} <= {"uploaded", "skipped_duplicate"}
