"""HTTP engine benchmark: httpx's own transport vs httpx over aiohttp, many requests in flight.

A tiny aiohttp server (its own process, 127.0.0.1, each answer delayed by ``--latency``)
stands in for a distant API. For each engine and each in-flight count, ``AionClient``
calls ``quota-check`` in a loop from that many tasks for ``--seconds``; the ideal rate is
in-flight / latency. Printed per row: requests/s, % of ideal, client CPU ms per request
(``resource.getrusage`` of this process only: the server runs in another).

    .venv/bin/python bench/http_engine.py [--seconds 5] [--latency 0.2] [--inflight 64,256]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web
from pydantic import SecretStr

from ingest.api import AionClient
from ingest.settings import ApiSettings
from tests.fixtures.ports import free_port

QUOTA = {"can_proceed": True, "requested": 1, "available": 990, "monthly_limit": 1000}


def serve(port: int, latency: float) -> None:
    async def quota(request: web.Request) -> web.Response:
        await asyncio.sleep(latency)
        return web.json_response(QUOTA)

    app = web.Application()
    app.router.add_get("/api/v2/uploads/quota-check", quota)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_until_up(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the benchmark server did not start")


async def measure(
    base_url: str, transport: str, inflight: int, seconds: float
) -> tuple[int, float, float]:
    settings = ApiSettings(
        key=SecretStr("bench-key"),
        base_url=base_url,
        transport=transport,  # type: ignore[arg-type]
        max_connections=inflight,
        max_attempts=1,
    )
    async with AionClient(settings) as client:
        # Warm the pool so connection setup is not charged to the measured window.
        await asyncio.gather(*(client.quota_check(1) for _ in range(inflight)))
        done = 0
        deadline = time.monotonic() + seconds

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await client.quota_check(1)
                done += 1

        cpu0, t0 = cpu_seconds(), time.monotonic()
        await asyncio.gather(*(loop() for _ in range(inflight)))
        elapsed, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    return done, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per row")
    parser.add_argument("--latency", type=float, default=0.2, help="server delay per answer (s)")
    parser.add_argument("--inflight", default="64,256", help="comma-separated in-flight counts")
    parser.add_argument("--transports", default="httpx,aiohttp", help="engines to compare")
    args = parser.parse_args()

    port = free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(port, args.latency), daemon=True
    )
    server.start()
    wait_until_up(port)
    try:
        base_url = f"http://127.0.0.1:{port}/api/v2"
        print(f"server latency {args.latency * 1000:.0f} ms, {args.seconds:.0f} s per row")
        print(f"{'engine':8} {'in flight':>9} {'req/s':>8} {'ideal':>7} {'% ideal':>8} CPU ms/req")
        for transport in args.transports.split(","):
            for inflight in (int(n) for n in args.inflight.split(",")):
                done, elapsed, cpu = asyncio.run(
                    measure(base_url, transport, inflight, args.seconds)
                )
                rate = done / elapsed
                ideal = inflight / args.latency
                print(
                    f"{transport:8} {inflight:>9} {rate:>8.0f} {ideal:>7.0f} "
                    f"{100 * rate / ideal:>7.0f}% {1000 * cpu / done:>11.2f}"
                )
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
