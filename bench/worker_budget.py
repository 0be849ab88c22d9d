"""Request budget: 4 workers sharing one key against a rate-limited sandbox.

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

    .venv/bin/python bench/worker_budget.py                  # R=120, 3,600 objects, accept
    .venv/bin/python bench/worker_budget.py --batch-results fetch
    .venv/bin/python bench/worker_budget.py --rpm 240 --objects 7200
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

import worker_harness as h

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rpm", type=int, default=120, help="the key's requests per minute")
    parser.add_argument("--objects", type=int, default=3600)
    parser.add_argument("--size", type=int, default=8 * 1024)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--bucket", default="bench-budget")
    parser.add_argument(
        "--batch-results",
        choices=["accept", "fetch"],
        default="accept",
        help="INGEST_WORKER__BATCH_RESULTS: accept (one request a batch) or fetch (two)",
    )
    args = parser.parse_args()

    with h.moto() as (s3, _), h.sandbox("--rate-limit", "--rpm", str(args.rpm)) as (api, _):
        h.fill_bucket(s3, args.bucket, args.objects, args.size)
        env = h.worker_env(
            s3,
            api,
            api__tier="PROFESSIONAL",
            worker__requests_per_minute=args.rpm,
            worker__batch_results=args.batch_results,
        )
        state, run_id = h.new_state(), f"budget-{uuid.uuid4().hex[:8]}"
        cmd = [h.PYTHON, "-m", "ingest", "run", f"s3://{args.bucket}/", "--state", state]
        cmd += ["--run-id", run_id, "-p", str(args.workers), "--shards", str(args.workers)]
        stop = threading.Event()
        samples = _watch(api, args.objects, stop)
        m = h.run_measured(cmd, env, marker=None)
        stop.set()
        stats = h.admin(api, "/_sandbox/stats")
    if m.code != 0:
        raise SystemExit(f"aion-ingest run exited {m.code}:\n{m.stderr_tail}")
    got = h.outcomes(state, run_id)
    moving = [t for t, n, _ in samples if n > 0]
    first = moving[0] if moving else 0.0
    # The window ends with the last request (not the last upload): with batch results
    # 'fetch' the session-results requests queue behind uploads at the limiter and trail
    # them, and a file is done when its result is in.
    final = samples[-1][2]
    last = next((t for t, _, r in samples if r >= final), samples[-1][0])
    window = max(last - first, 1e-9)
    uploads = stats["uploads"]
    requests = stats["requests"]
    throttled = stats["rate_limited"]
    per_min = 60 * uploads / window
    ceiling = args.rpm * FILES_PER_BATCH  # the target's R x 20, whatever the mode
    batches = -(-uploads // FILES_PER_BATCH)
    print(
        f"{args.workers} workers, one key at {args.rpm} requests/min, {FILES_PER_BATCH} files "
        f"a batch, batch results {args.batch_results}: {uploads} uploads of {args.objects} "
        f"in {window:.0f} s (outcomes {got})"
    )
    print(
        f"  {per_min:,.0f} files/min = {per_min / ceiling:.2f} x R x {FILES_PER_BATCH} "
        f"(ceiling {ceiling:,}/min; target >= {0.95 * ceiling:,.0f})"
    )
    print(
        f"  {requests} requests ({requests / max(batches, 1):.2f} per batch of "
        f"{FILES_PER_BATCH}), {throttled} answered 429 = {100 * throttled / max(requests, 1):.2f}%"
        f" (target <= 1%); by status {stats['by_status']}"
    )
    print(f"  wall {m.wall:.0f} s for 'aion-ingest run' (plan, workers, report)")
    met = per_min >= 0.95 * ceiling and throttled <= 0.01 * requests
    print("targets: " + ("met" if met else "NOT met"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
