"""`aion-ingest work` end to end: a folder source, a folder state store, the sandbox API."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

from ingest.cli import main
from ingest.demo.samples import make_jpeg
from ingest.state.base import RunLayout
from ingest.state.records import Checkpoint


def _results(state: Path, run_id: str) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for part in sorted((state / RunLayout(run_id).results_dir(0)).glob("part-*.jsonl.gz")):
        for line in gzip.decompress(part.read_bytes()).splitlines():
            r = json.loads(line)
            out[r["o"]] = r
    return out


@pytest.mark.timeout(120)
def test_work_uploads_a_planned_shard_and_a_rerun_changes_nothing(
    tmp_path: Path,
    sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "src"
    (src / "sub dir").mkdir(parents=True)
    rng = random.Random(7)
    for n in range(30):
        (src / f"img-{n:02d}.jpg").write_bytes(make_jpeg(rng, 2048 + n))
    (src / "sub dir" / "été ü.jpg").write_bytes(make_jpeg(rng, 4096))
    (src / "notes.exe").write_bytes(b"MZ")
    state = tmp_path / "state"
    monkeypatch.setenv("AIONVISION_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("AIONVISION_API_KEY", sandbox.api_key)
    monkeypatch.setenv("INGEST_FILTERS__SUPPORTED_ONLY", "false")
    monkeypatch.setenv("INGEST_LOG__FORMAT", "json")
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)

    args = ["--state", f"file://{state}", "--run-id", "r1"]
    assert main(["plan", str(src), *args, "--shards", "1"]) == 0
    assert main(["work", *args, "--index", "0"]) == 0
    files = sandbox.files()
    assert len(files) == 31
    results = _results(state, "r1")
    assert sorted(results) == list(range(32))
    outcomes = sorted(r["outcome"] for r in results.values())
    assert outcomes == ["skipped_unsupported"] + ["uploaded"] * 31
    cp = Checkpoint.from_bytes((state / RunLayout("r1").checkpoint(0)).read_bytes())
    assert cp.low == 32

    # a second worker on the done shard: nothing sent, nothing duplicated
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")
    assert main(["work", *args]) == 0
    assert len(sandbox.files()) == 31
    err = capsys.readouterr().err
    assert sandbox.api_key not in err
    for part in (state / RunLayout("r1").results_dir(0)).glob("*"):
        assert sandbox.api_key.encode() not in gzip.decompress(part.read_bytes())


def test_work_without_a_plan_or_an_index_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIONVISION_API_KEY", "aion_test_key_123")
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    state = f"file://{tmp_path}"
    assert main(["work", "--run-id", "nope", "--state", state]) == 2
    assert "JOB_COMPLETION_INDEX" in capsys.readouterr().err
    assert main(["work", "--run-id", "nope", "--state", state, "--index", "0"]) == 2
    assert "aion-ingest plan" in capsys.readouterr().err
