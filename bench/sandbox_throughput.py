"""How fast is the sandbox? Single-file stream uploads of 16 KiB, server pinned to one core.

Starts ``python -m ingest sandbox --store none --port 0`` as a subprocess pinned to one CPU
(the client is pinned to another when there is one), drives N uploads with raw aiohttp at
``--inflight`` concurrent requests (each body is a prebuilt multipart payload, so the client
stays cheap), and prints uploads/s plus the server's CPU per upload, read from
``/proc/<pid>/stat`` (utime + stime) before and after the measured window. Target: at least
1,500 uploads/s, so the sandbox is never the bottleneck of the project's benchmarks.

    .venv/bin/python bench/sandbox_throughput.py [--uploads 5000] [--inflight 64] [--size 16384]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY = "benchboundary0123456789"
TARGET = 1500


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _body(size: int) -> bytes:
    payload = b"\xff\xd8\xff\xe0" + os.urandom(size - 6) + b"\xff\xd9"
    return (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="bench.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def _start_server(cores: list[int]) -> tuple[subprocess.Popen[str], str]:
    server_core = cores[0]

    def pin() -> None:
        os.sched_setaffinity(0, {server_core})

    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "sandbox", "--store", "none", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=pin if len(cores) > 1 else None,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line!r}")
    return proc, line.split()[-1]


async def _drive(base: str, body: bytes, n: int, inflight: int, key: str) -> list[int]:
    url = f"{base}/user-files/upload/stream"
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    statuses: list[int] = []
    left = n
    connector = aiohttp.TCPConnector(limit=inflight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    statuses.append(r.status)

        await asyncio.gather(*(worker() for _ in range(inflight)))
    return statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=5000)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    proc, base = _start_server(cores)
    if len(cores) > 1:
        os.sched_setaffinity(0, set(cores[1:]))
    body = _body(args.size)
    try:
        asyncio.run(_drive(base, body, args.warmup, args.inflight, "aion_sandbox_key"))
        cpu0, t0 = _cpu_seconds(proc.pid), time.perf_counter()
        statuses = asyncio.run(_drive(base, body, args.uploads, args.inflight, "aion_sandbox_key"))
        elapsed, cpu = time.perf_counter() - t0, _cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    ok = statuses.count(200)
    rate = ok / elapsed
    print(
        f"sandbox stream uploads: {ok}/{len(statuses)} ok of {args.size} B, "
        f"{args.inflight} in flight, server pinned to core {cores[0]}"
        + ("" if len(cores) > 1 else " (only one core: client shares it)")
    )
    print(f"  {rate:,.0f} uploads/s   server CPU {1000 * cpu / max(ok, 1):.3f} ms/upload")
    print(f"  target >= {TARGET}/s: {'met' if rate >= TARGET else 'NOT met'}")
    return 0 if ok == len(statuses) else 1


if __name__ == "__main__":
    raise SystemExit(main())
