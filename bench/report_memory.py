"""Report memory at scale: a report of N planned rows (default 10,000,000) merged from a
folder store, in a child process whose peak RSS (``ru_maxrss``) is the figure.

Setup (not measured): plan N synthetic items into a temp folder store (the planner's own
spool and shards) and write one results part per shard (every item ``uploaded``). Then a
child process runs :func:`ingest.report.build_report` and prints its wall time and peak
RSS. Target: <= 300 MiB at 10M rows (issue 13, point 6). Repeats give min/median/max.

    .venv/bin/python bench/report_memory.py [--items 10000000] [--shards N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator

RSS_TARGET_MIB = 300


async def _items(n: int) -> AsyncIterator[object]:
    from ingest.items import Item

    for i in range(n):
        yield Item(key=f"photos/{i // 1000:05d}/img-{i:08d}.jpg", size=200_000 + i % 999,
                   etag=f"{i:032x}")  # fmt: skip


async def setup(state: str, n: int, shards: int) -> None:
    from ingest.items import ItemResult, Outcome
    from ingest.planning.planner import make_plan
    from ingest.settings import load_settings
    from ingest.state import RunLayout, open_state
    from ingest.state.records import encode_part, read_shard

    settings = load_settings(plan={"shards": shards, "ignore_quota": True})
    async with open_state(state, load_settings()) as store:
        out = await make_plan(
            _items(n), settings=settings, source_uri="s3://bench/", store=store, run_id="bench"
        )  # type: ignore[arg-type]
        for index in range(out.plan.shards):
            items = await read_shard(store, out.plan, index)
            results = [
                ItemResult(o, it.key, it.size, Outcome.UPLOADED, image_id=f"img-{o}", attempts=1)
                for o, it in enumerate(items)
            ]
            await store.create(RunLayout("bench").results_part(index, 0), encode_part(results))


async def measure(state: str) -> None:
    from ingest.report import build_report
    from ingest.settings import load_settings
    from ingest.state import open_state

    start = time.perf_counter()
    async with open_state(state, load_settings()) as store:
        report = await build_report(store, "bench")
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": report.planned_items, "seconds": seconds, "rss_mib": rss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000_000)
    ap.add_argument("--shards", type=int, default=0, help="default: one per 100,000 items")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        asyncio.run(measure(args.measure))
        return
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        state = f"file://{tmp}/state"
        t0 = time.perf_counter()
        asyncio.run(setup(state, args.items, args.shards or max(1, args.items // 100_000)))
        print(
            f"setup: {args.items:,} items planned and resulted in {time.perf_counter() - t0:.0f} s"
        )
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", state],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        rss = [r["rss_mib"] for r in runs]
        secs = [r["seconds"] for r in runs]
        print(
            f"report of {runs[0]['rows']:,} rows: peak RSS min/median/max "
            f"{min(rss):.0f}/{statistics.median(rss):.0f}/{max(rss):.0f} MiB "
            f"(target <= {RSS_TARGET_MIB}), time {min(secs):.1f}/{statistics.median(secs):.1f}/"
            f"{max(secs):.1f} s, load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
