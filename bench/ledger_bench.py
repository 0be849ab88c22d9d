"""Recurring imports: a listing planned against a ledger, and a run merged into one.

The parent makes, in a temp dir, a CSV manifest of ``--rows`` objects (``bucket,key,size,
etag``, in key order) and a ledger in a folder store holding as many entries: 1% of the
listed objects are not in it (*new*), 0.1% are in it with another ETag (*changed*), and
the 1% the listing lacks are objects deleted from the source. Child processes (so the
generator's memory does not count) then measure, each with its peak RSS (``ru_maxrss``):

- ``classify``: fetch the ledger (its pages to local disk), read the manifest through the
  real manifest source, anti-join every row against the ledger, spool the planned rows
  with the planner's spool writer (``--reader planner``: the whole ``make_plan`` with
  ``plan.ledger`` instead, over the source's ``batches()`` as ``plan_source`` reads it,
  shards and run.json included). Targets: >= 200,000 rows/s,
  <= 300 MiB.
- ``merge``: a run of ``--run-rows`` uploaded objects (planned with the real planner,
  outcomes written as results parts) merged into the ledger: a new segment, no
  compaction yet; then the compaction that merges it into the big segment (what every
  few runs pay, size-tiered) and the summary scan of ``aion-ingest ledger NAME``.

    .venv/bin/python bench/ledger_bench.py [--rows 10000000] [--run-rows 100000]
                                           [--reader manifest|minimal|planner] [--skip-merge]
                                           [--repeats N] [--against OLD_TREE]

``--against OLD_TREE`` (a checkout of an older commit, e.g. ``git worktree add /tmp/old
main``) measures classify there too, alternating old and new ``--repeats`` times on the
same files, and prints min/median/max of each: a before/after under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from ingest.items import Item

ROWS_TARGET = 200_000
RSS_TARGET_MIB = 300
NAME = "bench"


def key_of(i: int) -> str:
    return f"photos/{i // 1000:05d}/img{i:08d}.jpg"


def write_manifest(path: Path, rows: int) -> None:
    with open(path, "w") as f:
        for start in range(0, rows, 10_000):
            f.write(
                "".join(
                    f"bench-bucket,{key_of(i)},{1000 + i % 5000},{i:032x}\n"
                    for i in range(start, min(rows, start + 10_000))
                )
            )


def ledger_lines(rows: int) -> Iterator[str]:
    """Sorted segment lines: 99% of the listing (0.1% with another ETag) + 1% deleted."""
    t = "2026-11-28T02:00:00+00:00"
    for i in range(rows):
        key = key_of(i)
        if i % 100 != 0:  # 1% new: not in the ledger
            etag = f"{i:032x}" if i % 1000 != 1 else "0" * 32  # 0.1% changed
            yield (
                f"bench-bucket\t{key}\t{1000 + i % 5000}\t{etag}\t\t"
                f"{i:08x}-0000-4000-8000-000000000000\tr0\t{t}"
            )
        if i % 100 == 0:  # deleted from the source since: in the ledger only
            yield (
                f"bench-bucket\t{key[:-4]}.png\t1\tdead\t\t"
                f"{i:08x}-0000-4000-8000-000000000001\tr0\t{t}"
            )


async def build_ledger(state: Path, rows: int) -> None:
    from ingest.ledger.store import Ledger
    from ingest.settings import load_settings
    from ingest.state import open_state

    async with open_state(f"file://{state}", load_settings()) as store:
        await Ledger(store, NAME).add_run("r0", ledger_lines(rows))


async def minimal_csv(manifest: Path) -> AsyncIterator[Item]:
    with open(manifest) as f:  # noqa: ASYNC230 - a local file read in small buffered steps
        for line in f:
            bucket, key, size, etag = line.rstrip("\n").split(",")
            yield Item(key=key, size=int(size), etag=etag, bucket=bucket)


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def planner_child(manifest: Path, state: Path) -> dict[str, object]:
    """The whole planner with --ledger: manifest source, anti-join, spool, shards, run.json."""
    from ingest.planning.planner import make_plan
    from ingest.settings import load_settings
    from ingest.sources import open_source
    from ingest.state import open_state

    settings = load_settings(plan={"ledger": NAME, "ignore_quota": True})
    started, cpu = time.perf_counter(), time.process_time()
    async with (
        open_state(f"file://{state}", settings) as store,
        open_source(str(manifest), settings.source) as source,
    ):
        run_id = f"bench-{os.getpid()}"
        outcome = await make_plan(
            batches=source.batches(),
            settings=settings,
            source_uri=str(manifest),
            store=store,
            run_id=run_id,
        )
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    plan = outcome.plan
    return {
        "rows": plan.listed,
        "cpu_seconds": round(cpu, 2),
        "rows_per_cpu_s": round(plan.listed / cpu),
        "counts": {"new": plan.new, "changed": plan.changed, "unchanged": plan.unchanged},
        "planned": plan.items,
        "shards": plan.shards,
        "seconds": round(seconds, 2),
        "rows_per_s": round(plan.listed / seconds),
        "peak_rss_mib": peak_rss_mib(),
    }


async def classify_child(manifest: Path, state: Path, reader: str) -> dict[str, object]:
    if reader == "planner":
        return await planner_child(manifest, state)
    from ingest.ledger.join import AntiJoin
    from ingest.ledger.store import Ledger
    from ingest.planning.spool import SpoolWriter
    from ingest.settings import load_settings
    from ingest.sources import open_source
    from ingest.state import open_state

    settings = load_settings()
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        async with open_state(f"file://{state}", settings) as store:
            _, view = await Ledger(store, NAME).fetch(Path(tmp))
        fetched = time.perf_counter() - started
        join = AntiJoin(view, Path(tmp))
        spool = SpoolWriter(Path(tmp) / "spool.gz", 0.0, 1e18)
        rows = 0
        async with open_source(str(manifest), settings.source) as source:
            items = source.list() if reader == "manifest" else minimal_csv(manifest)
            async for item in items:
                rows += 1
                status = join.add(item)
                if status is not None and join.is_planned(status):
                    spool.add(item)
        for item, status in join.deferred():
            if join.is_planned(status):
                spool.add(item)
        spool.close()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return {
        "rows": rows,
        "cpu_seconds": round(cpu, 2),
        "rows_per_cpu_s": round(rows / cpu),
        "counts": {k.value: v for k, v in join.counts.items()},
        "planned": spool.stats.items,
        "fetch_seconds": round(fetched, 2),
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mib": peak_rss_mib(),
    }


async def merge_child(state: Path, run_rows: int) -> dict[str, object]:
    from ingest.items import ItemResult, Outcome
    from ingest.ledger.merge import merge_run
    from ingest.ledger.store import Ledger
    from ingest.ledger.summary import summarize
    from ingest.planning.planner import make_plan
    from ingest.settings import load_settings
    from ingest.state import RunLayout, open_state
    from ingest.state.records import decode_shard, encode_part

    async def listing() -> AsyncIterator[Item]:
        for i in range(run_rows):  # new objects, spread over the key space
            key = f"photos/{(i * 97) % 10_000:05d}/new{i:08d}.jpg"
            yield Item(key, 2000, f"{i:032x}", bucket="bench-bucket")

    settings = load_settings()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        async with open_state(f"file://{state}", settings) as store:
            plan = (
                await make_plan(listing(), settings=settings, source_uri="s3://b/", store=store)
            ).plan
            layout = RunLayout(plan.run_id)
            for index in range(plan.shards):
                blob = await store.get(layout.shard(index, plan.attempt))
                assert blob is not None
                results = [
                    ItemResult(o, it.key, it.size, Outcome.UPLOADED, image_id=f"img-{o}")
                    for o, it in enumerate(decode_shard(blob.data))
                ]
                await store.create(layout.results_part(index, 0), encode_part(results))
            started, cpu = time.perf_counter(), time.process_time()
            result = await merge_run(store, NAME, plan.run_id, Path(tmp))
            out["merge_seconds"] = round(time.perf_counter() - started, 2)
            out["merge_cpu"] = round(time.process_time() - cpu, 2)
            out["merge_recorded"] = result.recorded
            out["merge_peak_rss_mib"] = peak_rss_mib()
            ledger = Ledger(store, NAME)
            started, cpu = time.perf_counter(), time.process_time()
            await ledger.compact(Path(tmp), everything=True)
            out["compact_seconds"] = round(time.perf_counter() - started, 2)
            out["compact_cpu"] = round(time.process_time() - cpu, 2)
            manifest, _ = await ledger.read()
            out["entries_after"] = manifest.segments[0].entries
            started, cpu = time.perf_counter(), time.process_time()
            manifest, view = await ledger.fetch(Path(tmp))
            summary = summarize(manifest, view)
            out["summary_seconds"] = round(time.perf_counter() - started, 2)
            out["summary_cpu"] = round(time.process_time() - cpu, 2)
            out["summary_objects"] = summary.objects
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def run_child(*args: str, tree: str | None = None) -> dict[str, object]:
    """A child of this bench, or of the same bench in ``tree`` (its code) when given."""
    script, env = __file__, None
    if tree is not None:
        script = str(Path(tree) / "bench" / "ledger_bench.py")
        env = {**os.environ, "PYTHONPATH": tree}
    done = subprocess.run(
        [sys.executable, script, "--child", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _spread(values: list[float]) -> str:
    v = sorted(values)
    return f"min {v[0]:,.1f} / median {statistics.median(v):,.1f} / max {v[-1]:,.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--run-rows", type=int, default=100_000)
    parser.add_argument("--reader", choices=("manifest", "minimal", "planner"), default="manifest")
    parser.add_argument("--skip-merge", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--against", help="an older checkout to compare classify with")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, *rest = args.child
        if what == "classify":
            result = asyncio.run(classify_child(Path(rest[0]), Path(rest[1]), rest[2]))
        else:
            result = asyncio.run(merge_child(Path(rest[0]), int(rest[1])))
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        manifest, state = Path(tmp) / "manifest.csv", Path(tmp) / "state"
        started = time.perf_counter()
        write_manifest(manifest, args.rows)
        asyncio.run(build_ledger(state, args.rows))
        print(f"made the manifest and the ledger in {time.perf_counter() - started:.0f} s")
        arms = {"before": args.against, "after": None} if args.against else {"": None}
        runs: dict[str, list[dict[str, object]]] = {arm: [] for arm in arms}
        for _ in range(args.repeats):
            for arm, tree in arms.items():
                copy = Path(tmp) / "state-copy"  # a planner run registers itself: fresh copy
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(state, copy)
                load = os.getloadavg()[0]
                c = run_child("classify", str(manifest), str(copy), args.reader, tree=tree)
                c["load"] = round(load, 1)
                runs[arm].append(c)
                print(f"{arm or 'classify'}: {json.dumps(c)}", flush=True)
        for arm, done in runs.items():
            if len(done) > 1 or args.against:
                print(f"{arm or 'classify'} ({args.reader} reader, {len(done)} runs, loads "
                      f"{[d['load'] for d in done]}): " + "; ".join(
                          f"{f} {_spread([float(str(d[f])) for d in done])}"
                          for f in ("rows_per_s", "rows_per_cpu_s", "peak_rss_mib")))  # fmt: skip
        c = runs["after" if args.against else ""][-1]
        rate_ok = int(str(c["rows_per_s"])) >= ROWS_TARGET
        rss_ok = float(str(c["peak_rss_mib"])) <= RSS_TARGET_MIB
        fetch = c.get("fetch_seconds", "incl.")  # the planner child times fetch with the rest
        print(
            f"[classify, {args.reader} reader, load {load:.1f}] {c['rows']:,} rows against a "
            f"{args.rows:,}-entry ledger in {c['seconds']} s (fetch {fetch} s): "
            f"{c['rows_per_s']:,} rows/s (target >= {ROWS_TARGET:,}: "
            f"{'ok' if rate_ok else 'MISSED'}), {c['rows_per_cpu_s']:,} rows per CPU-second, "
            f"peak RSS {c['peak_rss_mib']} MiB "
            f"(target <= {RSS_TARGET_MIB}: {'ok' if rss_ok else 'MISSED'}); {c['counts']}, "
            f"planned {c['planned']:,}"
        )
        if not args.skip_merge:
            load = os.getloadavg()[0]
            m = run_child("merge", str(state), str(args.run_rows))
            print(
                f"[merge, load {load:.1f}] {m['merge_recorded']:,} outcomes into the ledger: "
                f"{m['merge_seconds']} s ({m['merge_cpu']} s CPU), peak RSS "
                f"{m['merge_peak_rss_mib']} MiB; then compacting all into one segment of "
                f"{m['entries_after']:,}: {m['compact_seconds']} s ({m['compact_cpu']} s CPU); "
                f"summary scan: {m['summary_seconds']} s ({m['summary_cpu']} s CPU) "
                f"({m['summary_objects']:,} objects); peak RSS {m['peak_rss_mib']} MiB"
            )
    return 0 if rate_ok and rss_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
