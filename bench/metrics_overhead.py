"""The cost of metrics: one worker's throughput with /metrics on vs off, same bucket.

Starts moto (pinned apart, as in ``worker_throughput.py``) and the sandbox (``--store
none``, no rate limit, no latency), fills a bucket with ``--objects`` objects of ``--size``
bytes, then runs ``aion-ingest work`` on a fresh one-shard plan of it ``--repeat`` times
in each mode, alternating off/on so load drifts hit both alike:

- off: no metrics port (no request observer either: the worker's code path of before);
- on: ``--metrics-port P`` with a scraper thread reading ``/metrics`` every
  ``--scrape-seconds`` (1 s: 15x harsher than the chart's 15 s interval).

Objects/s are over the pipeline window (from the worker's "N items" line to its exit);
CPU is the worker's over the same window. Target: the median on is within 3% of off.

``--scrape-cost`` measures instead, in this process, what one scrape of a busy worker costs
(the collector plus the text format, the worst worker of tests/metrics/test_series_budget.py:
every outcome, route and reason, 8 endpoints x every code class, every retry and S3 fallback
cause): CPU ms per scrape, which over a scrape
interval is the share of a core that metrics take, whatever the machine's load.

    .venv/bin/python bench/metrics_overhead.py                     # 3,000 x 16 KiB, 5 pairs
    .venv/bin/python bench/metrics_overhead.py --objects 1000 --repeat 3
    .venv/bin/python bench/metrics_overhead.py --scrape-cost
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import urllib.request
import uuid

import worker_harness as h

TARGET = 0.03


def _scrape(port: int, every: float, stop: threading.Event, count: list[int]) -> None:
    while not stop.wait(every):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                r.read()
            count[0] += 1
        except OSError:
            pass  # not listening yet, or gone


def _once(args: argparse.Namespace, s3: str, api: str, metrics: bool) -> tuple[float, float, int]:
    """(objects/s, CPU ms/object, scrapes) of one worker run."""
    h.admin(api, "/_sandbox/reset", {})
    settings: dict[str, str | int | float] = {
        "api__tier": "ENTERPRISE",
        "worker__requests_per_minute": 1e9,
        "worker__concurrency": args.concurrency,
    }
    env = h.worker_env(s3, api, **settings)
    state, run_id = h.new_state(), f"bench-{uuid.uuid4().hex[:8]}"
    h.plan(f"s3://{args.bucket}/", state, run_id, env)
    cmd = h.work_cmd(run_id, state)
    stop, scrapes = threading.Event(), [0]
    scraper = None
    if metrics:
        port = h.free_port()
        cmd += ["--metrics-port", str(port)]
        scraper = threading.Thread(
            target=_scrape, args=(port, args.scrape_seconds, stop, scrapes), daemon=True
        )
        scraper.start()
    try:
        m = h.run_measured(cmd, env)
    finally:
        stop.set()
        if scraper is not None:
            scraper.join(timeout=10)
    if m.code != 0:
        raise SystemExit(f"worker exited {m.code}:\n{m.stderr_tail}")
    got = h.outcomes(state, run_id)
    if got.get("uploaded", 0) != args.objects:
        raise SystemExit(f"worker outcomes {got}, expected {args.objects} uploaded")
    cpu = m.window_cpu if m.window_cpu is not None else m.cpu
    return m.per(args.objects), 1000 * cpu / args.objects, scrapes[0]


def _spread(values: list[float], fmt: str) -> str:
    return "/".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def scrape_cost(repeat: int = 2000) -> None:
    """CPU ms of one scrape of a busy worker's collector, min/median/max of 5 batches."""
    from prometheus_client import CollectorRegistry, generate_latest

    from ingest.items import Item, Outcome
    from ingest.metrics import names
    from ingest.metrics.requests import RequestStats
    from ingest.metrics.worker import WorkerCollector
    from ingest.s3.lean import CAUSES
    from ingest.worker.accounting import Accounting
    from ingest.worker.pacing import Limiter

    acct = Accounting(100_000, 10**9)
    for i, (outcome, route) in enumerate(pair for pair in names.OUTCOME_ROUTES for _ in range(50)):
        t = acct.open(i, Item(f"k{i}.jpg", 1000))
        t.route = route
        t.finish(Outcome(outcome), reason="x", http_status=413 if i % 2 else None)
        acct.close(t)
    for i in range(16):
        acct.open(10**6 + i, Item("f.jpg", 10))
    stats = RequestStats()
    endpoints = [
        "/user-files/upload/stream-batch",
        "/uploads/sessions/{id}/results",
        "s3:GetObject",
    ]
    endpoints += ["/uploads/check-duplicates", "/user-files/upload/stream", "presigned:PUT"]
    endpoints += ["/uploads/request-presigned-url", "/uploads/confirm"]
    for ep in endpoints:
        for code in ("200", "302", "404", "429", "503", "error"):
            for k in range(100):
                stats.request_done(ep, code, k / 100)
        for cause in names.RETRY_CAUSES:
            stats.retrying(ep, cause)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        WorkerCollector(
            acct, run_id="r", shard=3, version="v", requests=stats, pace=Limiter(10.0),
            queues=lambda: {"dedup": 1, "batcher": 2, "singles": 3},
            s3_fallbacks=lambda: dict.fromkeys(CAUSES, 1),
        )
    )  # fmt: skip
    text = generate_latest(registry)
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    per: list[float] = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(repeat // 5):
            generate_latest(registry)
        per.append(1000 * (time.process_time() - t0) / (repeat // 5))
    print(
        f"one scrape of a busy worker: {series} series, {len(text)} bytes, "
        f"{_spread(per, '.3f')} ms CPU (min/median/max of 5 x {repeat // 5})"
    )
    median = statistics.median(per)
    for interval in (1, 15, 30):
        print(
            f"  at one scrape per {interval:>2} s: {100 * median / 1000 / interval:.3f}% of a core"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5, help="off/on pairs")
    parser.add_argument("--scrape-seconds", type=float, default=1.0)
    parser.add_argument("--bucket", default="bench-metrics")
    parser.add_argument("--scrape-cost", action="store_true", help="in-process scrape cost")
    args = parser.parse_args()
    if args.scrape_cost:
        scrape_cost()
        return 0

    with h.moto() as (s3, s3_pid):
        pinning = h.pin_apart(s3_pid, "moto")
        h.fill_bucket(s3, args.bucket, args.objects, args.size)
        with h.sandbox() as (api, _):
            rates: dict[bool, list[float]] = {False: [], True: []}
            cpus: dict[bool, list[float]] = {False: [], True: []}
            print(
                f"{args.objects} objects of {args.size} B in moto ({pinning}); "
                f"{args.concurrency} in flight; scrape every {args.scrape_seconds} s when on"
            )
            for i in range(args.repeat):
                for metrics in (False, True):
                    rate, cpu, scrapes = _once(args, s3, api, metrics)
                    rates[metrics].append(rate)
                    cpus[metrics].append(cpu)
                    mode = f"on ({scrapes} scrapes)" if metrics else "off"
                    print(f"  pair {i + 1} {mode:<16} {rate:7.0f} obj/s  {cpu:5.2f} ms CPU/obj")
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    cost = 1 - on / off
    print(
        f"off: {_spread(rates[False], '.0f')} obj/s (min/median/max), "
        f"{_spread(cpus[False], '.2f')} ms CPU/obj"
    )
    print(f"on:  {_spread(rates[True], '.0f')} obj/s, {_spread(cpus[True], '.2f')} ms CPU/obj")
    print(
        f"cost of metrics (median throughput): {100 * cost:+.1f}% "
        f"(target <= {100 * TARGET:.0f}%): {'met' if cost <= TARGET else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
