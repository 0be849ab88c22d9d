"""Request budget: 4 workers sharing one key against a rate-limited sandbox, per mode.

Starts ``moto_server`` and the sandbox with ``--rate-limit --rpm R`` as subprocesses, fills
a bucket with ``--objects`` small objects, then runs ``aion-ingest run s3://... -p 4
--shards 4`` (local worker processes; ``run`` sets ``INGEST_WORKER__PARALLEL_WORKERS=4``)
with ``INGEST_WORKER__REQUESTS_PER_MINUTE=R`` and 20 files per stream-batch (tier
PROFESSIONAL). A thread polls ``/_sandbox/stats`` twice a second: the window runs from the
first upload the sandbox counted to its last request (session results included), so
planning and start-up are left out.

Targets: files/min >= 0.95 x R x 20, and at most 1% of the requests answered 429. The
ceiling is R x files per request; with ``--batch-results fetch`` (the worker's default)
every batch of more than 5 files also costs a session-results request (uploads-api.md: no
``immediate_results`` above 5 files), which this prints as requests per batch, so the
ceiling is then R / 2 x 20; ``accept`` (``INGEST_WORKER__BATCH_RESULTS``) skips it.

With ``--skew 3`` (the default) the objects are cut so that shard 0 holds three times
the objects of each other shard (small objects first in listing order, then objects three
times their size, shards balanced by bytes), so the last worker runs alone for a while:
with one budget per key it takes the whole budget. End to end is from starting
``aion-ingest run`` (plan, workers, id resolution, report) to its exit; the floor is
R x files per batch x (requests per file at the floor of the mode): ``accept`` 1,
``list`` 20/24 (one GET /user-files page per 100 files), ``fetch`` 1/2. The forecast
(ingest/planning/forecast.py) is printed beside the measured duration.

    .venv/bin/python bench/worker_budget.py                        # R=240, list,fetch,accept
    .venv/bin/python bench/worker_budget.py --modes list --repeat 3
    .venv/bin/python bench/worker_budget.py --skew 1 --rpm 120
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import worker_harness as h

from ingest.planning.forecast import Pace, Workload, forecast

FILES_PER_BATCH = 20


def _watch(api: str, target: int, stop: threading.Event) -> list[tuple[float, int, int]]:
    """(time, uploads, requests) every half second, from a thread, until ``stop`` is set."""
    samples: list[tuple[float, int, int]] = []

    def poll() -> None:
        while not stop.wait(0.5):
            stats = h.admin(api, "/_sandbox/stats")
            samples.append((time.perf_counter(), stats["uploads"], stats["requests"]))

    threading.Thread(target=poll, daemon=True).start()
    return samples


def fill_skewed(endpoint: str, bucket: str, count: int, size: int, skew: int, shards: int) -> None:
    """``count`` objects: shard 0's share (skew x each other shard's count) of size ``size``
    first in listing order, then the rest at ``skew`` x ``size`` (equal bytes per shard)."""
    s3 = h.s3_client(endpoint)
    s3.create_bucket(Bucket=bucket)
    first = count * skew // (skew + shards - 1)
    sizes = [size if i < first else size * skew for i in range(count)]
    from concurrent.futures import ThreadPoolExecutor

    def put(i: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"o/{i:07d}.jpg", Body=h.jpeg_body(sizes[i], i))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def results(state: str, run_id: str) -> list[dict[str, Any]]:
    """Every shard's latest outcome per ordinal (as the report reads them)."""
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    root = Path(state.removeprefix("file://")) / "runs" / run_id / "results"
    for part in sorted(root.rglob("part-*.jsonl.gz")):
        for line in gzip.decompress(part.read_bytes()).decode().splitlines():
            r = json.loads(line)
            latest[part.parent.name, r["o"]] = r
    return list(latest.values())


FLOOR = {"accept": 1.0, "list": 5 / 6, "fetch": 0.5}  # of R x files per batch, 20 a batch


def one_run(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    shards = args.workers
    with h.moto() as (s3, _), h.sandbox("--rate-limit", "--rpm", str(args.rpm)) as (api, _):
        fill_skewed(s3, args.bucket, args.objects, args.size, args.skew, shards)
        env = h.worker_env(
            s3,
            api,
            api__tier="PROFESSIONAL",
            worker__requests_per_minute=args.rpm,
            worker__batch_results=mode,
            plan__max_items_per_shard=10**9,
            plan__max_bytes_per_shard=10**11,  # 100 bytes per file: balanced by bytes
        )
        state, run_id = h.new_state(), f"budget-{uuid.uuid4().hex[:8]}"
        cmd = [h.PYTHON, "-m", "ingest", "run", f"s3://{args.bucket}/", "--state", state]
        cmd += ["--run-id", run_id, "-p", str(args.workers), "--shards", str(shards)]
        stop = threading.Event()
        samples = _watch(api, args.objects, stop)
        m = h.run_measured(cmd, env, marker=None)
        stop.set()
        stats = h.admin(api, "/_sandbox/stats")
    if m.code != 0:
        raise SystemExit(f"aion-ingest run exited {m.code}:\n{m.stderr_tail}")
    got = results(state, run_id)
    uploaded = [r for r in got if r["outcome"] == "uploaded"]
    with_id = sum(1 for r in uploaded if r.get("image_id"))
    moving = [t for t, n, _ in samples if n > 0]
    first = moving[0] if moving else 0.0
    final_uploads = samples[-1][1]
    last_upload = next((t for t, n, _ in samples if n >= final_uploads), samples[-1][0])
    final_requests = samples[-1][2]
    last_request = next((t for t, _, n in samples if n >= final_requests), samples[-1][0])
    ceiling = args.rpm * FILES_PER_BATCH
    uploading = 60 * stats["uploads"] / max(last_upload - first, 1e-9)
    end_to_end = 60 * stats["uploads"] / m.wall
    predicted = forecast(
        Workload(batch_files=args.objects),
        Pace(args.rpm, FILES_PER_BATCH, args.workers, batch_results=mode),
    )
    return {
        "mode": mode,
        "uploads": stats["uploads"],
        "uploaded_with_id": with_id,
        "uploaded": len(uploaded),
        "requests": stats["requests"],
        "throttled": stats["rate_limited"],
        "wall": m.wall,
        "uploading_x": uploading / ceiling,
        "end_to_end_x": end_to_end / ceiling,
        "floor_x": end_to_end / (ceiling * FLOOR[mode]),
        "predicted": predicted.seconds,
        "requests_window": last_request - first,  # first upload to last request (ids too)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rpm", type=int, default=240, help="the key's requests per minute")
    parser.add_argument("--objects", type=int, default=3600)
    parser.add_argument("--size", type=int, default=8 * 1024)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--skew", type=int, default=3, help="shard 0 holds SKEW x the others")
    parser.add_argument("--bucket", default="bench-budget")
    parser.add_argument("--modes", default="list,fetch,accept", help="batch results modes")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"{args.workers} workers, one key at {args.rpm} requests/min, {FILES_PER_BATCH} files a "
        f"batch, {args.objects} x {args.size} B, shard 0 = {args.skew} x the others; "
        f"load average {' '.join(load)}"
    )
    rows: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeat):
        for mode in args.modes.split(","):
            r = one_run(args, mode)
            rows.setdefault(mode, []).append(r)
            print(
                f"  {mode:6} {r['wall']:5.1f} s, first upload to last request "
                f"{r['requests_window']:5.1f} s (forecast {r['predicted']:5.1f} s): "
                f"uploading {r['uploading_x']:.2f} x R x {FILES_PER_BATCH}, end to end "
                f"{r['end_to_end_x']:.2f} ({r['floor_x']:.2f} of the mode's floor); "
                f"{r['requests']} requests, {r['throttled']} 429 "
                f"({100 * r['throttled'] / max(r['requests'], 1):.2f}%); "
                f"ids {r['uploaded_with_id']}/{r['uploaded']} uploaded",
                flush=True,
            )
    print(
        "mode: end to end x R x 20 (min/median/max) | of floor | uploading x R x 20 | "
        "wall vs forecast | requests window vs forecast | 429s"
    )
    for mode, rs in rows.items():

        def spread(key: str, rs: list[dict[str, Any]] = rs) -> str:
            v = [r[key] for r in rs]
            return f"{min(v):.2f}/{statistics.median(v):.2f}/{max(v):.2f}"

        err = [100 * (r["wall"] - r["predicted"]) / r["predicted"] for r in rs]
        win = [100 * (r["requests_window"] - r["predicted"]) / r["predicted"] for r in rs]
        print(
            f"  {mode}: {spread('end_to_end_x')} | {spread('floor_x')} | "
            f"{spread('uploading_x')} | {min(err):+.0f}%..{max(err):+.0f}% | "
            f"{min(win):+.0f}%..{max(win):+.0f}% | "
            f"{sum(r['throttled'] for r in rs)} of {sum(r['requests'] for r in rs)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
