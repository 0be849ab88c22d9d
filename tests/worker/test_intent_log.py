"""The intent log's rules one by one: records written, folded, forgotten; "skipped" judged.

The end-to-end proof (a real worker SIGKILLed, a sandbox losing answers) is
``test_intents.py``; here an in-memory store and a small lookup pin each rule.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import pytest

from ingest.api.models import ListUserFilesResponse
from ingest.items import Item, ItemResult, Outcome
from ingest.settings import load_settings
from ingest.state.base import RunLayout
from ingest.state.records import Checkpoint, encode_part
from ingest.worker.accounting import Accounting
from ingest.worker.intents import HELD_BEFORE, NOT_LISTED, OTHER_ITEM, OURS, IntentLog, Skip
from ingest.worker.pacing import Limiter
from ingest.worker.pipeline import ShardPipeline
from ingest.worker.uploads import Uploader
from tests.worker.fakeclock import FakeClock
from tests.worker.fakes import FakeApi, FakeSource
from tests.worker.memstore import MemoryStateStore

pytestmark = pytest.mark.timeout(30)
LAYOUT = RunLayout("r1")


class Lookup:
    """``GET /user-files?ids=``: created_at (ISO) by id; records each call."""

    def __init__(self, created: dict[str, str]) -> None:
        self.created = created
        self.calls: list[list[str]] = []

    async def list_user_files(
        self, *, limit: int = 100, ids: Sequence[str] = ()
    ) -> ListUserFilesResponse:
        self.calls.append(list(ids))
        files = [
            {"id": i, "size_bytes": 1, "created_at": self.created[i]}
            for i in ids
            if i in self.created
        ]
        return ListUserFilesResponse.model_validate(
            {"files": files, "total_count": len(files), "has_more": False}
        )


def _log(store: MemoryStateStore, worker: str, now: float, skew: float = 0.0) -> IntentLog:
    return IntentLog(store, LAYOUT, 0, worker, clock_skew=skew, clock=lambda: now)


def test_records_are_folded_by_the_next_worker_and_deleted_once_checkpointed() -> None:
    async def go() -> None:
        store = MemoryStateStore()
        first = _log(store, "w1", 100.0)
        await first.sent("batch", [0, 1, 2])
        await first.sent("stream", [3])
        second_try = _log(store, "w2", 200.0)
        await second_try.load()
        await second_try.sent("batch", [1, 2])  # re-sent by w2, then w2 crashed too
        nxt = _log(store, "w3", 300.0)
        assert await nxt.load() == 3
        p = nxt.prior(1)
        assert p is not None and (p.attempts, p.first_sent) == (2, 100.0)
        assert nxt.attempts(1, 1) == 3 and nxt.attempts(3, 1) == 2 and nxt.attempts(9, 1) == 1
        cp = Checkpoint()
        cp.add_all([0, 1, 2])
        assert await nxt.forget(cp) == 2  # [3] is not done yet: its record stays
        left = [p for p in store.objects if "/intents/" in p]
        assert len(left) == 1 and left[0].startswith(LAYOUT.intents_dir(0))
        cp.add(3)
        assert await nxt.forget(cp) == 1
        assert not [p for p in store.objects if "/intents/" in p]

    asyncio.run(go())


def test_a_skipped_id_created_after_our_first_send_is_ours_one_created_before_is_not() -> None:
    async def go() -> None:
        store = MemoryStateStore()
        await _log(store, "w1", 1_000.0).sent("batch", [0, 1, 2, 3])
        log = _log(store, "w2", 2_000.0, skew=2.0)
        await log.load()
        lookup = Lookup(
            {
                "ours": "1970-01-01T00:16:40.500000Z",  # 1000.5: after the first send
                "skewed": "1970-01-01T00:16:39Z",  # 999: before, but inside the 2 s margin
                "old": "1970-01-01T00:16:00Z",  # 960: on the server before the run
            }
        )
        skips = [
            Skip(0, "ours", 1_000.0),
            Skip(1, "skewed", 1_000.0),
            Skip(2, "old", 1_000.0),
            Skip(3, "gone", 1_000.0),
        ]
        verdicts = await log.settle(skips, lookup)
        assert {o: (v.ours, v.reason) for o, v in verdicts.items()} == {
            0: (True, OURS),
            1: (True, OURS),
            2: (False, HELD_BEFORE),
            3: (False, NOT_LISTED),
        }
        assert len(lookup.calls) == 1  # one lookup for the whole answer

    asyncio.run(go())


def test_an_id_is_ours_for_one_item_only() -> None:
    """Two items with the same bytes in one crashed request: one upload, one duplicate;
    an id the shard's stored results or this worker's answers give another item is not ours."""

    async def go() -> None:
        store = MemoryStateStore()
        await _log(store, "w1", 1_000.0).sent("batch", [0, 1, 2, 3])
        stored = ItemResult(5, "k5", 1, Outcome.UPLOADED, image_id="theirs", attempts=1)
        await store.create(LAYOUT.results_part(0, 0), encode_part([stored]))
        log = _log(store, "w2", 2_000.0)
        await log.load()
        await log.sent("batch", [0, 1, 2, 3])
        log.observed("seen")  # another item's upload answered to this worker
        late = "1970-01-01T00:20:00Z"
        lookup = Lookup({"same": late, "theirs": late, "seen": late})
        skips = [
            Skip(1, "same", 1_000.0),
            Skip(0, "same", 1_000.0),
            Skip(2, "theirs", 1_000.0),
            Skip(3, "seen", 1_000.0),
        ]
        verdicts = await log.settle(skips, lookup)
        assert {o: (v.ours, v.reason) for o, v in verdicts.items()} == {
            0: (True, OURS),  # the first sent (same time: the lower ordinal) made it
            1: (False, OTHER_ITEM),
            2: (False, OTHER_ITEM),
            3: (False, OTHER_ITEM),
        }

    asyncio.run(go())


def _jpg(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest() * 4


def test_one_record_per_request_and_only_trouble_asks_the_api() -> None:
    """A clean shard: one store write per stream-batch (not per file), no lookups; after
    an earlier worker's crash, the re-sent items are judged and counted, check-duplicates
    notwithstanding."""

    async def go() -> None:
        settings = load_settings(
            api={"tier": "PROFESSIONAL"},
            # 'fetch': the re-sent items are judged from their session results at once
            worker={"concurrency": 2, "queue_size": 8, "batch_results": "fetch"},
        )
        objects = {f"a/{i}.jpg": _jpg(i) for i in range(40)}
        # hashes known: check-duplicates is asked first; it must not decide for items an
        # earlier worker sent (held because *we* stored them)
        items = [Item(k, len(v), sha256=hashlib.sha256(v).hexdigest()) for k, v in objects.items()]

        async def run(api: FakeApi, log: IntentLog) -> dict[int, ItemResult]:
            got: list[ItemResult] = []
            acct = Accounting(len(items), 0, sink=got.append)
            uploader = Uploader(
                api,
                FakeSource(objects),
                settings.worker,
                acct,
                Limiter(1e6, clock=FakeClock()),
                intents=log,
            )
            pipe = ShardPipeline(
                list(enumerate(items)),
                Checkpoint(),
                uploader,
                files_per_batch=20,
                namespace="ns",
            )
            await pipe.run()
            return {r.ordinal: r for r in got}

        store = MemoryStateStore()
        api = FakeApi()
        first = _log(store, "w1", 0.0)  # the API's clock is now: long after 0
        results = await run(api, first)
        assert {r.outcome for r in results.values()} == {Outcome.UPLOADED}
        assert first.records_written == 2 and first.lookups == 0  # 40 files, 20 a batch
        # the worker "crashed": its records stay; the next one re-sends everything
        again = _log(store, "w2", 1.0)
        assert await again.load() == 2
        results = await run(api, again)
        assert {(r.outcome, r.attempts, r.reason) for r in results.values()} == {
            (Outcome.UPLOADED, 2, OURS)
        }
        assert again.lookups == 2  # one per answer of 20 "skipped"

    asyncio.run(go())
