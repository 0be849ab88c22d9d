"""The shard pipeline end to end over in-memory source and API: every outcome and route."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ingest.errors import FatalError
from ingest.items import Item, ItemResult, Outcome
from ingest.settings import STREAM_MAX_BYTES, load_settings
from ingest.worker.accounting import Accounting
from ingest.worker.checkpoint import Checkpoint
from ingest.worker.pacing import Limiter
from ingest.worker.pipeline import ShardPipeline
from ingest.worker.uploads import Uploader
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
    settings = load_settings(
        api={"tier": "PROFESSIONAL"}, worker={"concurrency": 4, "queue_size": 8, **worker}
    )
    api = api or FakeApi()
    source = FakeSource(objects)
    got: list[ItemResult] = []
    acct = Accounting(len(items), sum(i.size for i in items), sink=got.append)
    limiter = Limiter(1e6, clock=FakeClock())
    uploader = Uploader(api, source, settings, acct, limiter)  # type: ignore[arg-type]
    pipe = ShardPipeline(
        list(enumerate(items)), checkpoint or Checkpoint(), uploader, settings, namespace="ns"
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
