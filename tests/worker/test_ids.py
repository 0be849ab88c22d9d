"""Image ids resolved in bulk from GET /user-files (worker.batch_results=list).

The matching rules first, on plain data (pre-existing files of the same names and sizes,
two uploads that could claim one file, clock skew), then the whole path against the
sandbox: a planned run's batches uploaded by ``work``, ids resolved by ``resolve_run``,
counted on the sandbox's request log.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from ingest.api.client import AionClient
from ingest.cli import main
from ingest.demo.samples import make_jpeg
from ingest.items import Outcome
from ingest.settings import load_settings
from ingest.state import open_state
from ingest.worker import uploads
from ingest.worker.ids import Listed, Wanted, match, resolve_run
from ingest.worker.pacing import Limiter
from tests.worker.harness import FAST_ENV, Run


def _w(ordinal: int, name: str, size: int, sent: float, answered: float) -> Wanted:
    return Wanted((0, ordinal), name, size, sent, answered)


def test_a_file_of_the_same_name_and_size_from_before_the_upload_is_not_taken() -> None:
    wanted = [_w(0, "a.jpg", 100, 1000.0, 1001.0)]
    listed = [
        Listed("old", "a.jpg", 100, 900.0),  # uploaded before: same name, same size
        Listed("new", "a.jpg", 100, 1000.5),
        Listed("other-size", "a.jpg", 101, 1000.5),
    ]
    assert match(wanted, listed, slop=2.0) == {(0, 0): "new"}


def test_two_uploads_that_could_claim_one_file_are_both_left_to_the_fallback() -> None:
    # Same name and size in overlapping windows (two workers, two folders' "a.jpg"):
    # which listed file is which cannot be told, so neither is guessed.
    wanted = [_w(0, "a.jpg", 100, 1000.0, 1002.0), _w(1, "a.jpg", 100, 1001.0, 1003.0)]
    listed = [Listed("x", "a.jpg", 100, 1001.5), Listed("y", "a.jpg", 100, 1001.7)]
    assert match(wanted, listed, slop=0.5) == {}
    # One listed file only (the other upload was skipped as a duplicate): still ambiguous.
    assert match(wanted, listed[:1], slop=0.5) == {}


def test_same_names_in_separate_windows_are_told_apart() -> None:
    wanted = [_w(0, "a.jpg", 100, 1000.0, 1001.0), _w(1, "a.jpg", 100, 1010.0, 1011.0)]
    listed = [Listed("first", "a.jpg", 100, 1000.6), Listed("second", "a.jpg", 100, 1010.2)]
    assert match(wanted, listed, slop=2.0) == {(0, 0): "first", (0, 1): "second"}


def test_no_candidate_or_a_skewed_clock_beyond_the_slop_leaves_the_upload_pending() -> None:
    wanted = [_w(0, "a.jpg", 100, 1000.0, 1001.0)]
    assert match(wanted, [Listed("late", "a.jpg", 100, 1004.0)], slop=2.0) == {}
    assert match(wanted, [Listed("late", "a.jpg", 100, 1004.0)], slop=5.0) == {(0, 0): "late"}
    assert match(wanted, [Listed("unnamed", None, 100, 1000.5)], slop=5.0) == {}


def _env(monkeypatch: pytest.MonkeyPatch, sandbox: Any, **extra: str) -> None:
    mode = {"INGEST_WORKER__BATCH_RESULTS": "list"}  # the default; harness.FAST_ENV pins 'fetch'
    for k, v in {**FAST_ENV, **mode, **extra}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AIONVISION_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("AIONVISION_API_KEY", sandbox.api_key)


async def _resolve(state: str, run_id: str, sandbox: Any, slop: float = 0.0) -> Any:
    settings = load_settings(
        api={"base_url": sandbox.base_url, "key": sandbox.api_key, "tier": "PROFESSIONAL"}
    )
    limiter = Limiter(1e6)
    async with (
        open_state(state, settings) as store,
        AionClient(settings.api, pacer=limiter.request) as client,
    ):
        return await resolve_run(store, run_id, 1, client, slop=slop)


def test_ids_of_a_run_with_pre_existing_files_of_the_same_names(
    tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 files in 2 batches of 20; before the run the API already holds 3 other files
    under the run's names and sizes (someone else's) and 2 of the run's own files (same
    bytes: the API skips them as duplicates). Every file gets the right id and outcome.

    The sandbox shares this machine's clock, so the window needs no slop here (the slop
    for skew between machines is covered by the matching tests above; with it, files made
    a moment before the run would fall inside the window). The requests are exactly 2
    uploads + 1 listing page + 2 session results (the batches of the 2 skipped)."""
    rng = random.Random(21)
    src = tmp_path / "src"
    src.mkdir()
    bodies = {f"f-{i:02d}.jpg": make_jpeg(rng, 700 + i) for i in range(40)}
    for name, data in bodies.items():
        (src / name).write_bytes(data)
    with sandbox.client() as c:
        for name in ("f-00.jpg", "f-01.jpg", "f-02.jpg"):  # same name, same size, other bytes
            other = bytearray(bodies[name])
            other[-3] ^= 0xFF
            c.post("/user-files/upload/stream", files={"file": (name, bytes(other))})
        for name in ("f-10.jpg", "f-30.jpg"):  # the very same file: a duplicate
            c.post("/user-files/upload/stream", files={"file": (name, bodies[name])})
    before_ids = {f["id"] for f in sandbox.files()}
    _env(monkeypatch, sandbox, INGEST_WORKER__BATCH_FILES="20")
    state = f"file://{tmp_path / 'state'}"
    args = ["--state", state, "--run-id", "ids"]
    assert main(["plan", str(src), *args]) == 0
    n0 = sandbox.stats()["requests"]
    assert main(["work", *args, "--index", "0"]) == 0
    assert sandbox.stats()["requests"] - n0 == 2  # two batches, nothing else
    run = Run(state, "ids", {}, tmp_path)
    pending = {r.key: r for r in run.results().values()}
    assert all(r.reason == uploads.ID_PENDING and r.pending for r in pending.values())

    n1 = sandbox.stats()["requests"]
    stats = asyncio.run(_resolve(state, "ids", sandbox))
    assert sandbox.stats()["requests"] - n1 == 3  # one listing page, two sessions' results
    assert (stats.list_requests, stats.session_requests) == (1, 2)
    assert (stats.matched, stats.from_sessions, stats.unresolved) == (38, 2, 0)

    by_hash = {f["sha256"]: f for f in sandbox.files()}

    results = {r.key.rsplit("/", 1)[-1]: r for r in run.results().values()}
    for name, data in bodies.items():
        r = results[name]
        held = by_hash[hashlib.sha256(data).hexdigest()]
        assert r.image_id == held["id"], name
        assert r.pending is None and r.reason is None
        if name in ("f-10.jpg", "f-30.jpg"):
            assert r.outcome is Outcome.SKIPPED_DUPLICATE
            assert held["id"] in before_ids
        else:
            assert r.outcome is Outcome.UPLOADED
            assert held["id"] not in before_ids

    # Resolved once: a second pass has nothing pending and sends nothing.
    n2 = sandbox.stats()["requests"]
    again = asyncio.run(_resolve(state, "ids", sandbox))
    assert (again.pending, sandbox.stats()["requests"] - n2) == (0, 0)


def test_report_alone_resolves_the_ids_a_worker_left_pending(
    tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Shards run by ``aion-ingest work`` alone leave their ids pending; ``aion-ingest
    report`` resolves them as the run's report step does. Without an API key it says how
    many are pending and what to set, and builds the report all the same."""
    rng = random.Random(5)
    src = tmp_path / "src"
    src.mkdir()
    bodies = {f"r-{i:02d}.jpg": make_jpeg(rng, 1000 + i) for i in range(12)}
    for name, data in bodies.items():
        (src / name).write_bytes(data)
    _env(monkeypatch, sandbox, INGEST_WORKER__BATCH_FILES="6")
    args = ["--state", f"file://{tmp_path / 'state'}", "--run-id", "rep"]
    assert main(["plan", str(src), *args]) == 0
    assert main(["work", *args, "--index", "0"]) == 0
    run = Run(args[1], "rep", {}, tmp_path)
    assert all(r.pending for r in run.results().values())
    capsys.readouterr()

    monkeypatch.delenv("AIONVISION_API_KEY")
    n0 = sandbox.stats()["requests"]
    assert main(["report", "rep", "--state", args[1]]) == 0
    out = capsys.readouterr().out
    assert "image ids: 12 pending; set AIONVISION_API_KEY and run 'aion-ingest report rep'" in out
    assert sandbox.stats()["requests"] == n0 and all(r.pending for r in run.results().values())

    monkeypatch.setenv("AIONVISION_API_KEY", sandbox.api_key)
    assert main(["report", "rep", "--state", args[1]]) == 0
    assert "image ids: 12 pending, 12 from 1 listing pages" in capsys.readouterr().out
    by_hash = {f["sha256"]: f["id"] for f in sandbox.files()}
    results = {r.key.rsplit("/", 1)[-1]: r for r in run.results().values()}
    for name, data in bodies.items():
        assert results[name].image_id == by_hash[hashlib.sha256(data).hexdigest()], name
        assert results[name].pending is None
    report = (tmp_path / "state" / "runs" / "rep" / "report.csv").read_text()
    assert all(by_hash[hashlib.sha256(d).hexdigest()] in report for d in bodies.values())
