"""Kill tests: a worker process killed at random points, rerun until done, loses nothing
and stores nothing twice (DESIGN: uploads at-least-once, effect exactly-once).

Each seed draws its kill points from ``random.Random(seed)``: after some number of files
the sandbox has stored (observed, not timed), or as soon as the worker has claimed the
checkpoint (killed before or around its first upload). Most seeds use a folder source
and a folder state store; seed 0 keeps its state on moto's S3, and one more seed reads a
smaller source (``N_S3_ITEMS``) from moto too (putting and reading 2,000 objects through
moto took 20 s of the suite).
"""

from __future__ import annotations

import hashlib
import logging
import random
import signal
from pathlib import Path
from typing import Any

import pytest

from ingest.demo.samples import big_pdf_chunks
from ingest.items import Outcome
from tests.worker.harness import Run, Worker, assert_exactly_once, wait_for

N_ITEMS = 2000
N_S3_ITEMS = 300
# (seed, source, state): every seed a folder source but one, whose source is on moto
KILL_CASES = [(s, "folder", "s3" if s == 0 else "folder") for s in range(10)] + [(10, "s3", "s3")]
# A worker killed inside a checkpoint write leaves the folder store's lock file behind;
# the next worker breaks it once it is this old (30 s by default, too long for a test).
KILL_ENV = {"INGEST_STORE__LOCK_STALE_SECONDS": "1", "INGEST_WORKER__SMALL_FILE_MAX": "400"}


def _body(i: int) -> bytes:
    """A few hundred bytes of unique UTF-8 text (unique: the sandbox dedups by hash);
    one in 20 is over ``small_file_max`` (KILL_ENV) and goes by the stream route."""
    line = f"item {i:05d} of the kill test; every file differs from every other one.\n"
    return (line * (8 if i % 20 == 0 else 4)).encode()


def _name(i: int) -> str:
    return f"note-{i:05d}.txt"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kill-src")
    for i in range(N_ITEMS):
        (root / _name(i)).write_bytes(_body(i))
    return root


EXPECTED = {_name(i) for i in range(N_ITEMS)}


def _stored(sandbox: Any) -> int:
    return len(sandbox.app.store.files)  # the in-process server's store: cheap to poll


def _kill_at_random_points(run: Run, sandbox: Any, rng: random.Random, n: int) -> list[int]:
    """Start and SIGKILL the worker once or twice at points drawn from ``rng``; the codes."""
    return [_kill_once(run, sandbox, rng, n) for _ in range(rng.randint(1, 2))]


def _kill_once(run: Run, sandbox: Any, rng: random.Random, n: int) -> int:
    local = run.state.startswith("file://")
    before = run.local_checkpoint() if local else None
    generation = before.generation if before else 0
    w = run.start()
    if local and rng.random() < 0.25:
        # right after the claim: killed while reading, before or around its first upload
        def claimed() -> bool:
            cp = run.local_checkpoint()
            return (cp is not None and cp.generation > generation) or not w.alive()

        wait_for("the claim", claimed)
    else:
        target = _stored(sandbox) + rng.randint(1, n // 2)
        wait_for("uploads", lambda: _stored(sandbox) >= target or not w.alive())
    w.send(signal.SIGKILL)
    return w.wait()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("seed", "source", "state"), KILL_CASES)
def test_sigkill_at_random_points_then_rerun_loses_nothing_and_doubles_nothing(
    seed: int,
    source: str,
    state: str,
    folder: Path,
    tmp_path: Path,
    sandbox: Any,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(seed)
    n = N_S3_ITEMS if source == "s3" else N_ITEMS
    env: dict[str, str] = dict(KILL_ENV)
    if "s3" in (source, state):
        # moto's server logs each request at INFO (the planner's logging setup lets them
        # through): thousands of lines of formatting in this process, next to the sandbox
        monkeypatch.setattr(logging.getLogger("werkzeug"), "level", logging.WARNING)
        bucket = request.getfixturevalue("s3_bucket")
        env["AWS_ENDPOINT_URL"] = bucket.endpoint_url
    run = Run.create(tmp_path, sandbox, state=bucket.uri("state") if state == "s3" else None, **env)
    if source == "s3":
        _fill_bucket(bucket, n)
        run.plan(bucket.uri("src/"))
    else:
        run.plan(str(folder))
    try:
        codes = _kill_at_random_points(run, sandbox, rng, n)
        assert all(c in (-signal.SIGKILL, 0) for c in codes), codes
        run.finish()
    finally:
        run.stop_all()
    assert_exactly_once(run, sandbox, {_name(i) for i in range(n)})
    outcomes = {r.outcome for r in run.results().values()}
    assert outcomes <= {Outcome.UPLOADED, Outcome.SKIPPED_DUPLICATE}


def _fill_bucket(bucket: Any, n: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = bucket.server.client()

    def put(i: int) -> None:
        client.put_object(Bucket=bucket.name, Key=f"src/{_name(i)}", Body=_body(i))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(n)))


def _sigterm_after_progress(run: Run, sandbox: Any, at: int) -> Worker:
    w = run.start()
    wait_for("uploads", lambda: _stored(sandbox) >= at or not w.alive())
    assert w.alive(), f"the worker ended before {at} uploads:\n{w.stderr()}"
    w.send(signal.SIGTERM)
    return w


@pytest.mark.timeout(120)
@pytest.mark.parametrize("at", [300, 1300])
def test_sigterm_exits_143_with_a_flushed_checkpoint(
    at: int, folder: Path, tmp_path: Path, sandbox: Any
) -> None:
    run = Run.create(tmp_path, sandbox, **KILL_ENV)
    run.plan(str(folder))
    try:
        w = _sigterm_after_progress(run, sandbox, at)
        # A deadline only a hang misses (how fast is bench/'s business, not a test's); a
        # stage stuck on the way out would hold the exit for stop()'s grace and name itself.
        assert w.wait(timeout=60) == 143, w.stderr()
        assert "SIGTERM" in w.stderr() and "still running" not in w.stderr()
        cp = run.checkpoint()
        results = run.results()
        assert cp is not None
        # flushed: the checkpoint names exactly the ordinals whose outcomes are stored
        assert cp.count() == len(results) > 0
        assert all(cp.is_done(o) for o in results)
        assert not cp.is_complete(N_ITEMS)
        run.finish()
    finally:
        run.stop_all()
    assert_exactly_once(run, sandbox, EXPECTED)


BIG = 100 * 1024 * 1024 + 1024  # over the stream limit: request URL, PUT, confirm


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("when", ["mid-put", "after-confirm"])
def test_a_presigned_upload_killed_then_rerun_is_stored_once(
    when: str, tmp_path: Path, sandbox: Any
) -> None:
    """The idempotency key makes the re-sent presigned upload the same upload."""
    src = tmp_path / "src"
    src.mkdir()
    sha = hashlib.sha256()
    with (src / "scan.pdf").open("wb") as f:
        for chunk in big_pdf_chunks(BIG, seed=9):
            f.write(chunk)
            sha.update(chunk)
    for i in range(20):
        (src / _name(i)).write_bytes(_body(i))
    # ~2 s for the big PUT (a bandwidth cap), outcomes flushed late: room to kill in both
    run = Run.create(
        tmp_path,
        sandbox,
        INGEST_WORKER__FLUSH_SECONDS="5",
        INGEST_WORKER__BYTES_PER_SECOND=str(50 * 1024 * 1024),
        **KILL_ENV,
    )
    run.plan(str(src))
    try:
        w = run.start()
        if when == "mid-put":
            wait_for("the PUT", lambda: _putting(sandbox) or not w.alive())
        else:  # stored, but its outcome not yet flushed
            wait_for("the confirm", lambda: _has_size(sandbox, BIG) or not w.alive())
        assert w.alive(), w.stderr()
        w.send(signal.SIGKILL)
        w.wait()
        cp = run.checkpoint()
        [scan] = [o for o, item in enumerate(run.items()) if item.key == "scan.pdf"]
        resent = cp is None or not cp.is_done(scan)
        run.finish()
    finally:
        run.stop_all()
    big = [f for f in sandbox.files() if f["size_bytes"] == BIG]
    assert [f["sha256"] for f in big] == [sha.hexdigest()]
    # the killed worker's intent record counts its request: a re-send is attempt 2
    result = run.results()[scan]
    assert (result.outcome, result.image_id) == (Outcome.UPLOADED, big[0]["id"])
    assert result.attempts == (2 if resent else 1), result
    assert_exactly_once(run, sandbox, {"scan.pdf"} | {_name(i) for i in range(20)})


def _putting(sandbox: Any) -> bool:
    """A presigned URL was handed out and nothing has arrived at it yet."""
    presigns = list(sandbox.app.store.presigns.values())
    return bool(presigns) and all(p.received_size is None for p in presigns)


def _has_size(sandbox: Any, size: int) -> bool:
    return any(f.size_bytes == size for f in list(sandbox.app.store.files.values()))
