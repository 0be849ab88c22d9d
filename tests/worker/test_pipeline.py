"""The shard pipeline end to end over in-memory source and API: every outcome and route."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from ingest.api.files import FileSpec
from ingest.api.models import (
    QuotaCheckResponse,
    StreamBatchUploadResponse,
    UploadSessionResultItem,
)
from ingest.errors import FatalError, QuotaExhausted
from ingest.items import FailureCode, Item, ItemResult, Outcome
from ingest.settings import STREAM_MAX_BYTES, load_settings
from ingest.state.records import Checkpoint
from ingest.worker.accounting import Accounting
from ingest.worker.pacing import Limiter
from ingest.worker.pipeline import ShardPipeline
from ingest.worker.uploads import ACCEPTED_UNCHECKED, Uploader
from tests.worker.fakeclock import FakeClock
from tests.worker.fakes import FakeApi, FakeSource

pytestmark = pytest.mark.timeout(30)


def build(
    objects: dict[str, bytes],
    items: list[Item],
    *,
    checkpoint: Checkpoint | None = None,
    api: FakeApi | None = None,
    **worker: Any,
) -> tuple[ShardPipeline, FakeApi, FakeSource, list[ItemResult]]:
    # Mode 'fetch' unless a test says otherwise: these tests follow the per-file results
    # of each batch ('list' defers them to the run's end: tests/worker/test_ids.py).
    worker = {"concurrency": 4, "queue_size": 8, "batch_results": "fetch", **worker}
    settings = load_settings(api={"tier": "PROFESSIONAL"}, worker=worker)
    api = api or FakeApi()
    source = FakeSource(objects)
    got: list[ItemResult] = []
    acct = Accounting(len(items), sum(i.size for i in items), sink=got.append)
    limiter = Limiter(1e6, clock=FakeClock())
    uploader = Uploader(api, source, settings.worker, acct, limiter)
    pipe = ShardPipeline(
        list(enumerate(items)),
        checkpoint or Checkpoint(),
        uploader,
        files_per_batch=settings.files_per_batch(),
        namespace="ns",
    )
    return pipe, api, source, got


def jpg(n: int, size: int = 64) -> bytes:
    return hashlib.sha256(str(n).encode()).digest() * (size // 32)


def by_ordinal(got: list[ItemResult]) -> dict[int, ItemResult]:
    out = {r.ordinal: r for r in got}
    assert len(out) == len(got), "an ordinal got two outcomes"
    return out


async def test_every_outcome_once_and_full_batches() -> None:
    objects = {f"p/{n}.jpg": jpg(n) for n in range(45)}
    items = [Item(key=k, size=len(v)) for k, v in objects.items()]
    items.append(Item(key="p/notes.exe", size=10))  # unsupported: never read
    items.append(Item(key="p/gone.png", size=64))  # deleted after planning
    items.append(Item(key="p/empty.txt", size=0))  # the API refuses empty files
    objects["p/empty.txt"] = b""
    pipe, api, source, got = build(objects, items)
    await pipe.run()
    res = by_ordinal(got)
    assert sorted(res) == list(range(len(items)))
    assert [res[o].outcome for o in range(45)] == [Outcome.UPLOADED] * 45
    assert res[45].outcome is Outcome.SKIPPED_UNSUPPORTED
    assert res[46].outcome is Outcome.FAILED
    assert "gone" in (res[46].reason or "")
    assert res[47].outcome is Outcome.FAILED
    assert "empty" in (res[47].reason or "")
    assert "p/notes.exe" not in source.opened
    assert len(api.files) == 45
    batches = [int(r.split(":")[1]) for r in api.requests if r.startswith("batch:")]
    assert max(batches) == 20  # PROFESSIONAL: 20 files a request, filled
    assert "session-results" in api.requests  # more than 5 files: results from the session
    snap = pipe.accounting.snapshot()
    assert snap.in_flight == 0
    assert snap.by_outcome == {"uploaded": 45, "skipped_unsupported": 1, "failed": 2}


async def test_a_resend_is_answered_as_duplicate_and_done_ordinals_are_skipped() -> None:
    objects = {f"p/{n}.png": jpg(n) for n in range(10)}
    items = [Item(key=k, size=len(v)) for k, v in objects.items()]
    pipe, api, _, _ = build(objects, items)
    await pipe.run()
    cp = Checkpoint()
    cp.add_all(range(5))
    pipe, _, source, got = build(objects, items, checkpoint=cp, api=api)
    await pipe.run()
    res = by_ordinal(got)
    assert sorted(res) == list(range(5, 10))
    assert {r.outcome for r in res.values()} == {Outcome.SKIPPED_DUPLICATE}
    assert all(r.image_id for r in res.values())
    assert len(api.files) == 10
    assert not {f"p/{n}.png" for n in range(5)} & set(source.opened)


async def test_known_hashes_are_skipped_without_downloading() -> None:
    objects = {f"h/{n}.jpg": jpg(n) for n in range(300)}
    api = FakeApi()
    for n in range(0, 300, 3):  # a third is already held
        api._store(f"{n}.jpg", objects[f"h/{n}.jpg"], True)
    items = [
        Item(key=k, size=len(v), sha256=hashlib.sha256(v).hexdigest()) for k, v in objects.items()
    ]
    pipe, api, source, got = build(objects, items, api=api)
    await pipe.run()
    res = by_ordinal(got)
    assert len(res) == 300
    dups = [o for o, r in res.items() if r.outcome is Outcome.SKIPPED_DUPLICATE]
    assert dups == list(range(0, 300, 3))
    assert not any(source.opened.count(f"h/{n}.jpg") for n in range(0, 300, 3))
    checks = [int(r.split(":")[1]) for r in api.requests if r.startswith("check:")]
    assert max(checks) <= 250
    assert sum(checks) == 300


async def test_routes_by_size_and_title() -> None:
    objects = {"a/big.pdf": b"%PDF-1.4 big", "a/mid.jpg": jpg(1, 4096), "a/t.jpg": jpg(2)}
    items = [
        Item(key="a/big.pdf", size=STREAM_MAX_BYTES + 1),
        Item(key="a/mid.jpg", size=4096),
        Item(key="a/t.jpg", size=64, title="My title"),
    ]
    pipe, api, _, got = build(objects, items, small_file_max=1024)
    await pipe.run()
    assert sorted(api.requests) == ["presigned", "stream", "stream"]
    assert {r.outcome for r in got} == {Outcome.UPLOADED}
    held = {f["filename"]: f for f in api.files.values()}
    assert held["t.jpg"]["title"] == "My title"
    assert held["big.pdf"]["key"].startswith("ai-")


async def test_a_fatal_error_stops_the_shard_and_leaves_items_unrecorded() -> None:
    objects = {f"p/{n}.jpg": jpg(n) for n in range(30)}
    items = [Item(key=k, size=len(v)) for k, v in objects.items()]
    api = FakeApi()
    api.fatal = True
    pipe, api, _, got = build(objects, items, api=api)
    with pytest.raises(FatalError):
        await pipe.run()
    assert got == []
    assert pipe.accounting.snapshot().in_flight == 0
    assert all(t.done() for t in pipe.tasks)


class SlowResultsApi(FakeApi):
    """Session results wait until the next batch upload has arrived; uploads in flight
    are counted."""

    def __init__(self) -> None:
        super().__init__()
        self.uploads = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.next_upload = asyncio.Event()

    async def upload_stream_batch(
        self, files: Sequence[FileSpec], **kw: Any
    ) -> StreamBatchUploadResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
            return await super().upload_stream_batch(files, **kw)
        finally:
            self.in_flight -= 1
            self.uploads += 1
            if self.uploads > 1:
                self.next_upload.set()

    async def iter_session_results(
        self, session_id: str, *, page_size: int
    ) -> AsyncIterator[UploadSessionResultItem]:
        if self.uploads < 3:  # the last batch's results need not wait
            await self.next_upload.wait()
        async for r in super().iter_session_results(session_id, page_size=page_size):
            yield r


async def test_session_results_are_fetched_without_holding_an_upload_slot() -> None:
    """concurrency 1: the second batch goes out while the first waits for its results
    (holding the slot meanwhile would deadlock this test), and never two uploads at once."""
    objects = {f"s/{n}.jpg": jpg(n) for n in range(60)}
    items = [Item(key=k, size=len(v)) for k, v in objects.items()]
    api = SlowResultsApi()
    pipe, _, _, got = build(objects, items, api=api, concurrency=1)
    await pipe.run()
    assert api.requests.index("session-results") > api.requests.index("batch:20", 1)
    assert api.max_in_flight == 1
    assert {r.outcome for r in got} == {Outcome.UPLOADED} and len(got) == 60


@pytest.mark.parametrize("adds_up", [True, False])
async def test_accepted_batches_need_no_session_results(adds_up: bool) -> None:
    """batch_results=accept: an answer that accounts for every file costs no extra request
    (rejections fail, the rest are uploaded without image id); one that does not add up
    falls back to the session results."""

    class Api(FakeApi):
        async def upload_stream_batch(
            self, files: Sequence[FileSpec], **kw: Any
        ) -> StreamBatchUploadResponse:
            r = await super().upload_stream_batch(files, **kw)
            return r if adds_up else r.model_copy(update={"accepted_files": r.accepted_files - 1})

    objects = {f"p/{n}.jpg": jpg(n) for n in range(19)}
    objects["p/empty.jpg"] = b""  # rejected by the API, listed in the answer
    items = [Item(key=k, size=len(v)) for k, v in objects.items()]
    pipe, api, _, got = build(objects, items, api=Api(), batch_results="accept")
    await pipe.run()
    res = by_ordinal(got)
    assert res[19].outcome is Outcome.FAILED and "empty" in (res[19].reason or "")
    assert {res[o].outcome for o in range(19)} == {Outcome.UPLOADED}
    if adds_up:
        assert api.requests == ["batch:20"]
        assert {(res[o].image_id, res[o].reason) for o in range(19)} == {(None, ACCEPTED_UNCHECKED)}
    else:
        assert api.requests == ["batch:20", "session-results"]
        assert all(res[o].image_id for o in range(19))


class QuotaApi(FakeApi):
    """An API whose month's quota holds ``left`` more files and that refuses a request as a
    whole (402) when its new files do not fit (issue 14: a 20-file batch with 10 left)."""

    def __init__(self, left: int) -> None:
        super().__init__()
        self.left = left

    def _store(self, name: str, data: bytes, skip: bool, **meta: Any) -> tuple[str, bool]:
        fid, skipped = super()._store(name, data, skip, **meta)
        self.left -= 0 if skipped else 1
        return fid, skipped

    def _fits(self, n: int) -> None:
        if n > self.left:
            self.requests.append(f"refused:{n}")
            raise QuotaExhausted("upload quota exhausted: monthly limit reached", status=402)

    async def upload_stream_batch(self, files: Sequence[FileSpec], **kw: Any) -> Any:
        self._fits(len(files))
        return await super().upload_stream_batch(files, **kw)

    async def upload_stream(self, file: FileSpec, **kw: Any) -> Any:
        self._fits(1)
        return await super().upload_stream(file, **kw)

    async def quota_check(self, file_count: int) -> QuotaCheckResponse:
        self.requests.append(f"quota:{file_count}")
        return QuotaCheckResponse(
            can_proceed=file_count <= self.left, requested=file_count, available=self.left
        )


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_at_the_quota_edge_batches_shrink_to_what_is_left_and_the_rest_is_recorded(
    concurrency: int,
) -> None:
    """10 uploads left, 42 files (batches of 20): the first batch is refused as a whole, is
    sized down to the 10 that fit and sent again; every other file is ``quota_exhausted``
    (the later ones without a request) and the shard completes."""
    objects = {f"p/{n:02d}.jpg": jpg(n) for n in range(42)}
    items = [Item(key=k, size=len(v)) for k, v in objects.items()]
    pipe, api, _, got = build(objects, items, api=QuotaApi(10), concurrency=concurrency)
    await pipe.run()
    out = by_ordinal(got)
    assert len(out) == 42
    uploaded = [r for r in out.values() if r.outcome is Outcome.UPLOADED]
    exhausted = [r for r in out.values() if r.code == FailureCode.QUOTA_EXHAUSTED]
    assert (len(uploaded), len(exhausted), api.left) == (10, 32, 0)
    assert all(r.outcome is Outcome.FAILED and "quota" in (r.reason or "") for r in exhausted)
    assert {f["id"] for f in api.files.values()} == {r.image_id for r in uploaded}
    assert "batch:10" in api.requests
    if concurrency == 1:  # in order: 402, the check, the 10 that fit, 402, the check; no more
        assert api.requests[:6] == [
            "refused:20", "quota:20", "batch:10", "session-results", "refused:20", "quota:20"
        ]  # fmt: skip
        assert len(api.requests) == 6
