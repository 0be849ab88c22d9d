"""The planner over a manifest's batches (complete plain rows kept as tuples, made Items
only when planned or filtered out) plans what it plans over the same listing as Items:
the same shards, listed, filtered, new, changed and unchanged counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from ingest.items import Listed
from ingest.ledger.store import Ledger
from ingest.planning.planner import make_plan
from ingest.settings import load_settings
from ingest.sources import Filter, open_source
from ingest.state import StateStore
from ingest.state.records import RunPlan
from tests.fixtures.s3 import S3Bucket
from tests.ledger.helpers import entry, lines
from tests.sources.helpers import settings as source_settings


async def plan_both_ways(
    manifest: Path, s3_bucket: S3Bucket, store: StateStore, item_filter: Filter
) -> tuple[RunPlan, RunPlan, list[list[Listed]]]:
    """``manifest`` planned (dry run, against the ledger "imp") over the source's batches
    and over its Items: both plans, and the batches the first got."""
    settings = load_settings(plan={"ledger": "imp", "ignore_quota": True})
    options = source_settings(s3_bucket.endpoint_url)
    seen: list[list[Listed]] = []

    async def counted(batches: AsyncIterator[list[Listed]]) -> AsyncIterator[list[Listed]]:
        async for batch in batches:
            seen.append(batch)
            yield batch

    async def plan(fast: bool) -> RunPlan:
        async with open_source(str(manifest), options) as source:
            outcome = await make_plan(
                None if fast else source.list(),
                batches=counted(source.batches()) if fast else None,
                settings=settings,
                source_uri=str(manifest),
                store=store,
                item_filter=item_filter,
                dry_run=True,
            )
            return outcome.plan

    return await plan(True), await plan(False), seen


async def test_plain_rows_plan_as_items_do(
    s3_bucket: S3Bucket, tmp_path: Path, folder_store: StateStore
) -> None:
    b = s3_bucket.name
    s3_bucket.put("h.jpg", b"xyz")  # listed without size or ETag: filled by a HEAD
    head = s3_bucket.server.client().head_object(Bucket=b, Key="h.jpg")
    h_etag = str(head["ETag"]).strip('"')
    known = [
        entry("a.jpg", "e1", size=3, bucket=b),
        entry("c.jpg", "old", size=4, bucket=b),
        entry("t\tab.jpg", "e", size=6, bucket=b),  # escaped in its ledger line
        entry("h.jpg", h_etag, size=3, bucket=b),
        entry("z.jpg", "e", size=1, bucket=b),  # deleted from the source since
    ]
    await Ledger(folder_store, "imp").add_run("r0", iter(lines(known)))
    rows = [
        f"{b},a.jpg,3,e1",  # unchanged
        f"{b},c.jpg,4,new",  # changed
        f"{b},n.jpg,5,e",  # new
        f'{b},"t\tab.jpg",6,e',  # unchanged, its probe needs the escape rule
        f"{b},big.jpg,{10**7},e",  # filtered: too large
        f"{b},doc.exe,1,e",  # filtered: unsupported
        f"{b},h.jpg",  # unchanged once its HEAD is done
        f"{b},b.jpg,7,e",  # out of order: set aside, new
        f"{b},a.jpg,3,e1",  # listed again, out of order: unchanged
    ]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    fast, slow, batches = await plan_both_ways(
        manifest, s3_bucket, folder_store, Filter(max_size=10**6)
    )
    kinds = Counter(type(row).__name__ for batch in batches for row in batch)
    assert kinds == {"tuple": 8, "Item": 1}  # the fast path was taken
    for plan_ in (fast, slow):
        assert plan_.listed == 9
        assert plan_.filtered == {"too_large": 1, "unsupported_format": 1}
        assert (plan_.new, plan_.changed, plan_.unchanged) == (2, 1, 4)
        assert (plan_.items, plan_.bytes) == (3, 4 + 5 + 7)
    assert (fast.shard_items, fast.shard_bytes, fast.shard_etags) == (
        slow.shard_items,
        slow.shard_bytes,
        slow.shard_etags,
    )


async def test_whole_plain_chunks_plan_as_items_do(
    s3_bucket: S3Bucket, tmp_path: Path, folder_store: StateStore
) -> None:
    """Chunks of common plain rows (PlainBatches, joined by their texts) among others:
    long unchanged runs, new and changed rows between them, a row out of order and one
    listed twice inside a chunk, a chunk the format filter cuts: the same shards and
    counts as over Items."""
    b = s3_bucket.name
    keys = [f"p/{i:04d}.jpg" for i in range(600)]
    known = [
        entry(k, f"e{i}", size=i, bucket=b)
        for i, k in enumerate(keys)
        if i % 50 != 7  # new
    ]
    known.append(entry("p/0300x.jpg", "gone", size=1, bucket=b))  # deleted since
    await Ledger(folder_store, "imp").add_run("r0", iter(lines(known)))
    rows = [f"{b},{k},{i},e{i}" for i, k in enumerate(keys)]
    rows[150] = f"{b},{keys[150]},150,other"  # changed
    rows[200], rows[201] = rows[201], rows[200]  # out of order: set aside
    rows.insert(400, rows[399])  # listed twice: unchanged twice
    rows.insert(500, f"{b},p/0500.exe,1,e")  # filtered: its chunk goes the general way
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    fast, slow, batches = await plan_both_ways(manifest, s3_bucket, folder_store, Filter())
    kinds = Counter(type(batch).__name__ for batch in batches)
    assert kinds["PlainBatch"] >= 7  # the fast path was taken
    for plan_ in (fast, slow):
        assert plan_.listed == 602
        assert plan_.filtered == {"unsupported_format": 1}
        assert (plan_.new, plan_.changed, plan_.unchanged) == (12, 1, 588)
    assert (fast.items, fast.bytes) == (slow.items, slow.bytes)
    assert (fast.shard_items, fast.shard_bytes, fast.shard_etags) == (
        slow.shard_items,
        slow.shard_bytes,
        slow.shard_etags,
    )
