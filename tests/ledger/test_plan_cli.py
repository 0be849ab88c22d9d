"""`aion-ingest plan --ledger`: the anti-join's counts in the summary and in --json, the
run registered as pending, and the errors of a bad ledger use."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ingest.cli import main
from ingest.items import Outcome
from ingest.ledger.merge import merge_run, pending_path
from ingest.settings import load_settings
from ingest.state import open_state
from ingest.state.records import read_plan
from tests.ledger.test_merge import finish_run


def _folder(root: Path, n: int) -> Path:
    for i in range(n):
        (root / f"img{i:02d}.jpg").write_bytes(b"x" * (100 + i))
    return root


def _finish_and_merge(state: Path, run_id: str, failed: set[str], work: Path) -> None:
    async def go() -> None:
        async with open_state(f"file://{state}", load_settings()) as store:
            plan = await read_plan(store, run_id)
            await finish_run(store, plan, dict.fromkeys(failed, Outcome.FAILED))
            await merge_run(store, "photos", run_id, work)

    asyncio.run(go())


def test_plan_against_the_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    src = _folder(tmp_path / "src", 6)
    state = tmp_path / "state"
    common = ["--state", f"file://{state}", "--ignore-quota", "--ledger", "photos"]
    assert main(["plan", str(src), "--run-id", "r1", *common]) == 0
    out = capsys.readouterr().out
    assert "ledger    photos: 6 new, 0 changed (sent again), 0 unchanged (not planned)" in out
    assert (state / pending_path("photos", "r1")).exists()  # registered before run.json
    _finish_and_merge(state, "r1", {"img05.jpg"}, tmp_path)  # a failure is not recorded

    (src / "img00.jpg").write_bytes(b"y" * 300)  # changed: another size
    (src / "img09.jpg").write_bytes(b"z" * 10)  # new
    assert main(["plan", str(src), "--run-id", "r2", *common, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["new"], doc["changed"], doc["unchanged"]) == (2, 1, 4)  # img05 failed: new
    assert (doc["items"], doc["listed"], doc["ledger"]) == (3, 7, "photos")

    assert main(["plan", str(src), "--run-id", "r3", *common, "--changed", "skip", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["items"], doc["changed"], doc["changed_action"]) == (2, 1, "skip")


def test_bad_ledger_uses_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path
    (src / "a.jpg").write_bytes(b"x")
    assert main(["plan", str(src), "--dry-run", "--ledger", "photos"]) == 2
    assert "--ledger photos needs the state store" in capsys.readouterr().err
    state = f"file://{tmp_path}/state"
    assert main(["plan", str(src), "--state", state, "--ignore-quota", "--ledger", "a b"]) == 2
    err = capsys.readouterr().err
    assert "ledger name 'a b' is not usable" in err and len(err.strip().splitlines()) == 1
