"""Source files that change under the worker: each fails alone, never its neighbours, and
never hangs or tears an upload (issue 13, points 7, 8 and 12)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from ingest.demo.samples import make_jpeg
from ingest.items import Outcome
from tests.worker.harness import Run


def _write(src: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(data)


@pytest.mark.timeout(120)
def test_an_empty_file_gone_before_its_batch_fails_alone(tmp_path: Path, sandbox: Any) -> None:
    rng = random.Random(7)
    files = {"a-empty.jpg": b""} | {f"b{i}.jpg": make_jpeg(rng, 1500 + i) for i in range(6)}
    src = tmp_path / "src"
    _write(src, files)
    run = Run.create(tmp_path, sandbox)
    run.plan(str(src))
    (src / "a-empty.jpg").unlink()  # 0 bytes planned, gone when its batch is sent
    code, err = run.work()
    assert code == 0, err[-3000:]
    results = {r.key: r for r in run.results().values()}
    assert results["a-empty.jpg"].outcome is Outcome.FAILED
    assert "gone" in (results["a-empty.jpg"].reason or "")
    others = {k: r.outcome for k, r in results.items() if k != "a-empty.jpg"}
    assert others == {k: Outcome.UPLOADED for k in files if k != "a-empty.jpg"}
    assert {f["filename"] for f in sandbox.files()} == set(others)
