"""Every upload route and every outcome, through real parts: moto's S3, the sandbox.

Routes are checked on the sandbox's side: a stream-batch file belongs to a session, a
stream file does not, a presigned one says PRESIGNED. The >100 MB object is made on the
fly (``big_pdf_chunks``) and streamed into moto; nothing big is kept in git or memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from ingest.api.client import AionClient
from ingest.cli import main
from ingest.demo.samples import ChunkReader, big_pdf_chunks, make_jpeg
from ingest.items import Item, Outcome
from ingest.settings import load_settings
from ingest.worker import uploads
from ingest.worker.accounting import Accounting
from ingest.worker.batcher import Pending
from ingest.worker.naming import upload_fields
from ingest.worker.pacing import Limiter
from ingest.worker.uploads import Uploader
from tests.worker.fakes import FakeSource
from tests.worker.harness import FAST_ENV, Run

BIG = 100 * 1024 * 1024 + 4096  # just over the stream limit: the presigned route


def _upload_direct(sandbox: Any, name: str, data: bytes) -> None:
    """A file the API already holds before the run (uploaded by someone else)."""
    with sandbox.client() as c:
        r = c.post("/user-files/upload/stream", files={"file": (name, data)})
        r.raise_for_status()


def _by_key(run: Run) -> dict[str, Any]:
    return {r.key.rsplit("/", 1)[-1]: r for r in run.results().values()}


@pytest.mark.timeout(180)
def test_every_route_and_outcome_from_s3(tmp_path: Path, sandbox: Any, s3_bucket: Any) -> None:
    rng = random.Random(3)
    small = {f"small-{i:02d}.jpg": make_jpeg(rng, 900 + i) for i in range(8)}
    held = make_jpeg(rng, 1200)
    stream_file = make_jpeg(rng, 20_000)
    for name, data in small.items():
        s3_bucket.put(f"src/{name}", data)
    s3_bucket.put("src/held-already.jpg", held)
    s3_bucket.put("src/large.jpg", stream_file)
    s3_bucket.put("src/setup.exe", b"MZ\x90\x00")
    s3_bucket.put("src/not-really.jpg", b"this is text, not a JPEG")
    sha = hashlib.sha256()
    for chunk in big_pdf_chunks(BIG, seed=5):
        sha.update(chunk)
    client = s3_bucket.server.client()
    client.upload_fileobj(ChunkReader(big_pdf_chunks(BIG, seed=5)), s3_bucket.name, "src/scan.pdf")
    _upload_direct(sandbox, "held-before.jpg", held)

    run = Run.create(
        tmp_path,
        sandbox,
        AWS_ENDPOINT_URL=s3_bucket.endpoint_url,
        INGEST_WORKER__SMALL_FILE_MAX="4096",
        INGEST_WORKER__BATCH_RESULTS="fetch",  # ids at once ('list': test_ids.py)
    )
    run.plan(s3_bucket.uri("src/"))
    code, err = run.work()
    assert code == 0, err[-3000:]

    results = _by_key(run)
    assert {k: r.outcome for k, r in results.items()} == {
        **dict.fromkeys(small, Outcome.UPLOADED),
        "held-already.jpg": Outcome.SKIPPED_DUPLICATE,
        "large.jpg": Outcome.UPLOADED,
        "scan.pdf": Outcome.UPLOADED,
        "setup.exe": Outcome.SKIPPED_UNSUPPORTED,
        "not-really.jpg": Outcome.FAILED,
    }
    assert "format" in (results["setup.exe"].reason or "")
    assert results["not-really.jpg"].reason
    files = {f["filename"]: f for f in sandbox.files()}
    held_id = files["held-before.jpg"]["id"]
    assert results["held-already.jpg"].image_id == held_id
    for name, data in small.items():  # stream-batch: in a session
        assert files[name]["session_id"] is not None
        assert files[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert results[name].image_id == files[name]["id"]
    assert files["large.jpg"]["session_id"] is None  # stream: one file, no session
    assert files["large.jpg"]["upload_method"] == "STREAMING"
    big = files["scan.pdf"]
    assert big["upload_method"] == "PRESIGNED"
    assert (big["size_bytes"], big["sha256"]) == (BIG, sha.hexdigest())
    assert set(files) == {*small, "held-before.jpg", "large.jpg", "scan.pdf"}


def test_batch_results_are_read_over_several_session_pages(
    tmp_path: Path,
    sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch of 23 files whose session results come back 4 to a page."""
    rng = random.Random(11)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(23):
        (src / f"p-{i:02d}.jpg").write_bytes(make_jpeg(rng, 700 + i))
    env = {"INGEST_WORKER__BATCH_FILES": "23", "INGEST_WORKER__BATCH_RESULTS": "fetch"}
    for k, v in {**FAST_ENV, **env}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AIONVISION_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("AIONVISION_API_KEY", sandbox.api_key)
    monkeypatch.setattr(uploads, "RESULTS_PAGE", 4)
    args = ["--state", f"file://{tmp_path / 'state'}", "--run-id", "pages"]
    assert main(["plan", str(src), *args]) == 0
    assert main(["work", *args, "--index", "0"]) == 0
    files = {f["filename"]: f for f in sandbox.files()}
    assert len({f["session_id"] for f in files.values()}) == 1  # one request, one session
    run = Run(f"file://{tmp_path / 'state'}", "pages", {}, tmp_path)
    results = _by_key(run)
    assert len(results) == 23
    for name, r in results.items():
        assert r.outcome is Outcome.UPLOADED, r
        assert r.image_id == files[name]["id"]


@pytest.mark.timeout(120)
def test_known_hashes_from_a_manifest_are_skipped_without_reading_the_objects(
    tmp_path: Path, sandbox: Any, s3_bucket: Any
) -> None:
    """check-duplicates: items whose sha256 the API holds end as skipped_duplicate, and
    are never read (their objects are deleted after planning to prove it)."""
    rng = random.Random(21)
    bodies = {f"m-{i}.jpg": make_jpeg(rng, 1500 + i) for i in range(6)}
    for name, data in bodies.items():
        s3_bucket.put(f"m/{name}", data)
    known = ["m-1.jpg", "m-4.jpg"]
    for name in known:
        _upload_direct(sandbox, f"earlier-{name}", bodies[name])
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(
        "".join(
            json.dumps(
                {
                    "bucket": s3_bucket.name,
                    "key": f"m/{name}",
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
            + "\n"
            for name, data in bodies.items()
        )
    )
    run = Run.create(tmp_path, sandbox, AWS_ENDPOINT_URL=s3_bucket.endpoint_url)
    run.plan(str(manifest))
    client = s3_bucket.server.client()
    for name in known:
        client.delete_object(Bucket=s3_bucket.name, Key=f"m/{name}")
    code, err = run.work()
    assert code == 0, err[-3000:]
    results = _by_key(run)
    earlier = {f["filename"]: f["id"] for f in sandbox.files()}
    for name in bodies:
        if name in known:
            assert results[name].outcome is Outcome.SKIPPED_DUPLICATE, results[name]
        else:
            assert results[name].outcome is Outcome.UPLOADED, results[name]
    assert set(earlier) == {f"earlier-{n}" for n in known} | (set(bodies) - set(known))


@pytest.mark.parametrize("mode", ["list", "fetch", "accept"])
def test_batch_results_fetch_or_accept(
    tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """One batch of 12 (one not an image): 'fetch' asks the session for per-file results
    (2 requests), 'accept' trusts the upload answer (1 request, no image ids), 'list'
    too, leaving each id pending for the run's bulk resolution (1 request)."""
    rng = random.Random(12)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(11):
        (src / f"a-{i:02d}.jpg").write_bytes(make_jpeg(rng, 800 + i))
    (src / "not-really.jpg").write_bytes(b"this is text, not a JPEG")
    env = {**FAST_ENV, "INGEST_WORKER__BATCH_FILES": "12", "INGEST_WORKER__BATCH_RESULTS": mode}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AIONVISION_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("AIONVISION_API_KEY", sandbox.api_key)
    args = ["--state", f"file://{tmp_path / 'state'}", "--run-id", mode]
    assert main(["plan", str(src), *args]) == 0
    before = sandbox.stats()["requests"]
    assert main(["work", *args, "--index", "0"]) == 0
    assert sandbox.stats()["requests"] - before == (2 if mode == "fetch" else 1)
    files = {f["filename"]: f for f in sandbox.files()}
    assert len(files) == 11
    results = _by_key(Run(f"file://{tmp_path / 'state'}", mode, {}, tmp_path))
    assert results["not-really.jpg"].outcome is Outcome.FAILED
    assert results["not-really.jpg"].reason
    for name in files:
        r = results[name]
        assert r.outcome is Outcome.UPLOADED, r
        if mode == "fetch":
            assert (r.image_id, r.reason) == (files[name]["id"], None)
        elif mode == "list":
            assert (r.image_id, r.reason) == (None, uploads.ID_PENDING)
            assert r.pending is not None and r.pending.filename == name
        else:
            assert (r.image_id, r.reason) == (None, uploads.ACCEPTED_UNCHECKED)


async def test_the_session_results_fetch_is_paced_by_the_limiter(sandbox: Any) -> None:
    """Outside the upload slot, still a request: the limiter grants it like the upload."""
    rng = random.Random(13)
    objects = {f"q/q-{i}.jpg": make_jpeg(rng, 1600 + i) for i in range(8)}
    items = [Item(key=k, size=len(v)) for k, v in objects.items()]
    settings = load_settings(
        api={"base_url": sandbox.base_url, "key": sandbox.api_key, "tier": "PROFESSIONAL"},
        worker={"batch_results": "fetch"},
    )
    limiter = Limiter(1e6)
    acct = Accounting(len(items), sum(i.size for i in items))
    batch = [Pending(o, i, upload_fields(i, settings.worker, "ns")) for o, i in enumerate(items)]
    async with AionClient(settings.api, pacer=limiter.request) as client:
        uploader = Uploader(client, FakeSource(objects), settings.worker, acct, limiter)
        await uploader.send_batch(batch, asyncio.Semaphore(1))
    assert limiter.stats.granted == 2  # the upload and the session results
    assert acct.snapshot().by_outcome == {"uploaded": 8}
