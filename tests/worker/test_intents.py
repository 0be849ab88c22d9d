"""Re-sends after a crash or a lost answer are reported as what they were (issue 13, point 1).

A worker SIGKILLed after the server stored its uploads but before its checkpoint re-sends
them on restart, and the API answers "skipped" with the existing id. The intent records
(``ingest/worker/intents.py``) let the report say ``uploaded`` for those, with the image id
and the true attempt count, while a real duplicate (its original on the server before the
run) in the very same requests stays ``skipped_duplicate``.

The kill is placed by events, not by time: the sandbox loses every upload's answer after
storing it (``drop_response_rate=1``), so the worker can store nothing as done; the test
waits until the sandbox holds every file, then kills it.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from ingest.items import Outcome
from ingest.worker.intents import HELD_BEFORE, OURS
from tests.worker.harness import Run, wait_for

SMALL_MAX = 400  # INGEST_WORKER__SMALL_FILE_MAX: bigger files go by the stream route
ENV = {
    "INGEST_WORKER__SMALL_FILE_MAX": str(SMALL_MAX),
    # nothing is written as done before the worker's end (so none before the kill)
    "INGEST_WORKER__FLUSH_SECONDS": "600",
    "INGEST_WORKER__FLUSH_ITEMS": "100000",
    # a lost answer is retried for as long as the test needs (short backoffs: FAST_ENV)
    "INGEST_API__MAX_ATTEMPTS": "1000",
    # the sandbox and the workers read one machine's clock
    "INGEST_WORKER__CLOCK_SKEW_SECONDS": "0",
    "INGEST_STORE__LOCK_STALE_SECONDS": "1",
}
N_SMALL = 9


def _small(i: int) -> bytes:
    return f"small note {i:03d} of the intent test; unique.\n".encode() * 3


def _big(tag: str) -> bytes:
    return f"a larger note ({tag}) that goes by the stream route.\n".encode() * 20


def _source(root: Path) -> dict[str, bytes]:
    """The run's files: small ones (stream-batch), one big (stream), and two real
    duplicates whose originals the server holds before the run (one per route)."""
    files = {f"notes/n-{i:03d}.txt": _small(i) for i in range(N_SMALL)}
    files["notes/big.txt"] = _big("ours")
    files["dups/copy-of-x.txt"] = _small(999)
    files["dups/copy-of-y.txt"] = _big("theirs")
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    assert len(_small(0)) <= SMALL_MAX < len(_big("x"))
    return files


def _preload(sandbox: Any) -> dict[str, str]:
    """Upload the duplicates' originals as another client did before the run: name -> id."""
    ids = {}
    with sandbox.client() as c:
        for name, data in (("x.txt", _small(999)), ("y.txt", _big("theirs"))):
            r = c.post("/user-files/upload/stream", files={"file": (name, data, "text/plain")})
            r.raise_for_status()
            ids[name] = r.json()["image_id"]
    return ids


def _by_filename(sandbox: Any) -> dict[str, str]:
    return {f["filename"]: f["id"] for f in sandbox.files()}


def _check_report(run: Run, sandbox: Any, originals: dict[str, str], attempts: int | None) -> None:
    """Ours: uploaded with the stored file's id; the duplicates: skipped with the originals'."""
    held = _by_filename(sandbox)
    assert len(held) == len(set(held.values())) == N_SMALL + 3, "a file stored twice"
    results = run.results()
    items = run.items()
    assert sorted(results) == list(range(len(items)))
    ours = {items[o].key: r for o, r in results.items() if not items[o].key.startswith("dups/")}
    for key, r in ours.items():
        assert r.outcome is Outcome.UPLOADED, r
        assert r.image_id == held[key.rsplit("/", 1)[-1]], r
        if attempts is not None:
            assert r.attempts == attempts, r
            assert r.reason == OURS, r
    for o, r in results.items():
        key = items[o].key
        if key.startswith("dups/"):
            original = originals["x.txt" if "copy-of-x" in key else "y.txt"]
            assert (r.outcome, r.image_id) == (Outcome.SKIPPED_DUPLICATE, original), r
            assert r.reason == HELD_BEFORE, r


def _intent_records(run: Run) -> list[Path]:
    root = run.state_dir() / "runs" / run.run_id / "intents"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch_files", ["5", "50"], ids=["inline-results", "session-results"])
def test_uploads_stored_before_a_sigkill_are_reported_uploaded_after_the_rerun(
    batch_files: str, tmp_path: Path, sandbox: Any
) -> None:
    src = tmp_path / "src"
    files = _source(src)
    originals = _preload(sandbox)
    run = Run.create(tmp_path, sandbox, INGEST_WORKER__BATCH_FILES=batch_files, **ENV)
    run.plan(str(src))
    sandbox.set_faults(drop_response_rate=1.0)  # stored, then every answer lost
    try:
        w = run.start()
        # every file of the run is on the server (2 originals + ours), no answer came back
        want = len(files) - 2 + 2
        wait_for("the uploads", lambda: len(sandbox.app.store.files) >= want or not w.alive())
        assert w.alive(), w.stderr()
        assert _intent_records(run), "no intent record written before the requests"
        w.send(signal.SIGKILL)
        assert w.wait() == -signal.SIGKILL
        cp = run.checkpoint()
        assert cp is not None and cp.count() == 0 and not run.results()  # nothing recorded
        sandbox.set_faults(drop_response_rate=0.0)
        run.finish()
    finally:
        run.stop_all()
    _check_report(run, sandbox, originals, attempts=2)
    assert not _intent_records(run), "intent records left after the shard finished"


@pytest.mark.timeout(120)
def test_answers_lost_after_the_server_stored_them_are_reported_uploaded(
    tmp_path: Path, sandbox: Any
) -> None:
    """No crash: the proxy loses answers; the client's retry is answered "skipped"."""
    src = tmp_path / "src"
    _source(src)
    originals = _preload(sandbox)
    run = Run.create(tmp_path, sandbox, **ENV)
    run.plan(str(src))
    # seed 4 draws 0.24, 0.10, 0.40 first: the first three upload answers (the batch and
    # the two stream uploads, in whatever order they arrive) are lost
    sandbox.set_faults(drop_response_rate=0.5, seed=4)
    try:
        run.finish()
    finally:
        run.stop_all()
    assert sandbox.stats()["dropped"] >= 3
    _check_report(run, sandbox, originals, attempts=None)
    retried = [r for r in run.results().values() if r.attempts > 1]
    assert retried and all(r.reason in (OURS, HELD_BEFORE) for r in retried), (
        "a retried upload's 'skipped' answer was not judged"
    )
    assert not _intent_records(run)
