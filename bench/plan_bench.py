"""Planning throughput and memory: a 1,000,000-row CSV manifest planned to a folder store.

The parent writes the manifest (``bucket,key,size,etag``, no header) in a temp dir; a child
process plans it (manifest source → filters → spool → shards → run.json) so the generator's
memory does not count. The child reports rows/s over the whole plan and its peak RSS
(``ru_maxrss``). Targets: >= 100,000 rows/s, <= 200 MiB.

    .venv/bin/python bench/plan_bench.py [--rows 1000000] [--reader manifest|minimal]
                                         [--shards N] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from ingest.items import Item

ROWS_TARGET = 100_000
RSS_TARGET_MIB = 200


def write_manifest(path: Path, rows: int) -> None:
    rnd = random.Random(7)
    with open(path, "w") as f:
        for start in range(0, rows, 10_000):
            f.write(
                "".join(
                    f"bench-bucket,photos/{i // 1000:04d}/img{i:08d}.jpg,"
                    f"{int(rnd.lognormvariate(13, 1.5))},{i:032x}\n"
                    for i in range(start, min(rows, start + 10_000))
                )
            )


async def minimal_csv(manifest: Path) -> AsyncIterator[Item]:
    """The least a reader must do (split, int): shows the planner's own throughput."""
    with open(manifest) as f:  # noqa: ASYNC230 - a local file read in small buffered steps
        for line in f:
            bucket, key, size, etag = line.rstrip("\n").split(",")
            yield Item(key=key, size=int(size), etag=etag, bucket=bucket)


async def plan_child(
    manifest: Path, state: Path, shards: int | None, reader: str
) -> dict[str, object]:
    from ingest.planning.planner import make_plan
    from ingest.settings import load_settings
    from ingest.sources import Filter, open_source
    from ingest.state import open_state

    settings = load_settings(plan={"shards": shards})
    item_filter = Filter.from_settings(settings.filters)
    started = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_state(f"file://{state}", settings))
        if reader == "manifest":  # as `aion-ingest plan` reads it (plan_source): batches
            source = await stack.enter_async_context(open_source(str(manifest), settings.source))
            items, batches = None, source.batches()
        else:
            items, batches = minimal_csv(manifest), None
        out = await make_plan(
            items,
            batches=batches,
            settings=settings,
            source_uri=str(manifest),
            store=store,
            item_filter=item_filter,
        )
    seconds = time.perf_counter() - started
    return {
        "rows": out.plan.listed,
        "planned": out.plan.items,
        "shards": out.plan.shards,
        "seconds": round(seconds, 2),
        "rows_per_s": round(out.plan.listed / seconds),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=None)
    parser.add_argument(
        "--reader",
        choices=("manifest", "minimal"),
        default="manifest",
        help="manifest: the real manifest source; minimal: split lines in the bench",
    )
    parser.add_argument("--profile", action="store_true", help="print the child's top functions")
    parser.add_argument("--child", nargs=2, metavar=("MANIFEST", "STATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        manifest, state = (Path(p) for p in args.child)
        if args.profile:
            prof = cProfile.Profile()
            result = prof.runcall(
                asyncio.run, plan_child(manifest, state, args.shards, args.reader)
            )
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
        else:
            result = asyncio.run(plan_child(manifest, state, args.shards, args.reader))
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as tmp:
        manifest = Path(tmp) / "manifest.csv"
        write_manifest(manifest, args.rows)
        child = [sys.executable, __file__, "--child", str(manifest), str(Path(tmp) / "state")]
        child += ["--reader", args.reader]
        child += ["--shards", str(args.shards)] if args.shards else []
        child += ["--profile"] if args.profile else []
        done = subprocess.run(child, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        if args.profile:
            print(done.stderr, file=sys.stderr)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    rate_ok = result["rows_per_s"] >= ROWS_TARGET
    rss_ok = result["peak_rss_mib"] <= RSS_TARGET_MIB
    print(
        f"[{args.reader} reader] planned {result['rows']:,} manifest rows "
        f"into {result['shards']} shards "
        f"in {result['seconds']} s: {result['rows_per_s']:,} rows/s "
        f"(target >= {ROWS_TARGET:,}: {'ok' if rate_ok else 'MISSED'}), "
        f"peak RSS {result['peak_rss_mib']} MiB "
        f"(target <= {RSS_TARGET_MIB}: {'ok' if rss_ok else 'MISSED'})"
    )
    return 0 if rate_ok and rss_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
