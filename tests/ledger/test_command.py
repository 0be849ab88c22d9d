"""``aion-ingest ledger NAME``: summary, export, rebuild, and its errors, through the CLI."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest

from ingest.cli import main
from ingest.items import Item, Outcome
from ingest.ledger.merge import merge_run
from ingest.settings import load_settings
from ingest.state import open_state
from tests.ledger.test_merge import finish_run, plan_run


def two_runs(state: Path, work: Path) -> None:
    """r1: three objects (one failed), r2: one of them again with a new ETag, one new."""

    async def go() -> None:
        async with open_state(f"file://{state}", load_settings()) as store:
            first = [Item(k, 10, "e1", bucket="src") for k in ("a.jpg", "=cmd.jpg", "c.jpg")]
            await finish_run(store, await plan_run(store, "r1", first), {"c.jpg": Outcome.FAILED})
            await merge_run(store, "nightly", "r1", work)
            second = [Item("a.jpg", 20, "e2", bucket="src"), Item("d.jpg", 5, bucket="src")]
            await finish_run(store, await plan_run(store, "r2", second, shards=1), {})
            await merge_run(store, "nightly", "r2", work)

    asyncio.run(go())


def test_summary_export_and_rebuild(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    two_runs(state, tmp_path)
    uri = f"file://{state}"
    assert main(["ledger", "nightly", "--state", uri]) == 0
    out = capsys.readouterr().out
    assert "ledger nightly: 3 objects, 35 bytes, 2 runs merged, last run r2 at" in out

    export = tmp_path / "map.csv"
    assert main(["ledger", "nightly", "--state", uri, "--export", str(export)]) == 0
    with open(export, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["key"], r["image_id"], r["etag"], r["run_id"]) for r in rows] == [
        ("'=cmd.jpg", "img-=cmd.jpg-e1", "e1", "r1"),  # a formula no spreadsheet will run
        ("a.jpg", "img-a.jpg-e2", "e2", "r2"),
        ("d.jpg", "img-d.jpg-None", "", "r2"),
    ]

    assert main(["ledger", "nightly", "--state", uri, "--rebuild-from", "r1"]) == 0
    assert "rebuilt from 1 runs, 2 objects" in capsys.readouterr().out
    assert main(["ledger", "nightly", "--state", uri, "--json"]) == 0
    assert '"objects": 2' in capsys.readouterr().out


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"file://{tmp_path}/state"
    assert main(["ledger", "nope", "--state", uri]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no ledger 'nope'" in err
    assert main(["ledger", "../x", "--state", uri]) == 2
    assert "ledger name '../x' is not usable" in capsys.readouterr().err
    assert main(["ledger", "n", "--state", uri, "--rebuild-from", "missing-run"]) == 2
    assert "run 'missing-run' has no plan" in capsys.readouterr().err
    bad = str(tmp_path / "no" / "such" / "x.csv")
    two_runs(tmp_path / "state", tmp_path)
    assert main(["ledger", "nightly", "--state", uri, "--export", bad]) == 2
    assert "does not exist; create it" in capsys.readouterr().err
