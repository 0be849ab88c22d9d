"""``make demo`` / ``python -m ingest.demo``: the main job on embedded local servers.

Starts moto's S3 server and the sandbox on free loopback ports, fills a bucket with the
generated sample (:mod:`ingest.demo.samples`: real JPEG/PNG/PDF/TXT files, unsupported
files, duplicates, a nested tree with unicode and spaces, one object over 100 MB made on
the fly), runs ``aion-ingest run`` with 4 shards and 2 workers in parallel, checks what the
sandbox holds, explains the report, and stops its servers. Everything lives under
``--workdir`` (default ``.demo/``), emptied at each start, so running it twice works.

This module (the demo folder) is the one place that uses moto and boto3 outside the tests:
they are the demo's embedded S3, installed with the ``demo`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import io
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ingest.demo.samples import ChunkReader, SampleObject, sample_bucket

BUCKET = "demo-bucket"
API_KEY = "aion_demo_key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until the server accepts connections (another process: polling is the only way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: the sandbox exited early with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"demo: the sandbox did not listen on port {port} within {timeout:.0f}s")


def fill_bucket(endpoint: str, objects: list[SampleObject]) -> None:
    import boto3
    from boto3.s3.transfer import TransferConfig

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)

    def put(obj: SampleObject) -> None:
        if obj.data is not None:
            s3.put_object(Bucket=BUCKET, Key=obj.key, Body=obj.data)
        else:  # the big one: a streamed multipart upload, never whole in memory
            s3.upload_fileobj(
                io.BufferedReader(ChunkReader(obj.chunks()), 1 << 20),
                BUCKET,
                obj.key,
                Config=TransferConfig(multipart_chunksize=16 << 20, max_concurrency=2),
            )

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(put, o) for o in objects]:
            future.result()


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


async def _server_files(base_url: str) -> list[Any]:
    from ingest.api.client import AionClient
    from ingest.settings import ApiSettings

    settings = ApiSettings(key=SecretStr(API_KEY), base_url=base_url)
    async with AionClient(settings) as client:
        return [f async for f in client.list_all_user_files()]


def cli_command() -> str:
    """``aion-ingest`` as a shell runs it: the bare name when PATH finds this installation's,
    else its path (after ``make`` it sits in ``.venv/bin``, not on PATH), else ``python -m``."""
    here = Path(sys.executable).parent / "aion-ingest"
    found = shutil.which("aion-ingest")
    if found and here.exists() and Path(found).resolve() == here.resolve():
        return "aion-ingest"
    if here.exists():
        return shlex.quote(str(here))
    return f"{shlex.quote(sys.executable)} -m ingest"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingest.demo", description=__doc__)
    parser.add_argument("--objects", type=int, default=3000, help="small objects (default 3000)")
    parser.add_argument(
        "--big-mib", type=int, default=101, help="size of the big object in MiB; 0: none"
    )
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(".demo"))
    args = parser.parse_args(argv)
    try:
        from ingest.demo.s3_server import AtomicMotoServer
    except ImportError:
        print("demo: moto is missing; install the demo extra: pip install 'aion-ingest[demo]'")
        return 2

    started = time.monotonic()
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    os.environ.update(  # the embedded S3 takes any credentials; boto3 wants some
        AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo", AWS_DEFAULT_REGION="us-east-1"
    )

    s3_port, api_port = _free_port(), _free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    moto = AtomicMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{s3_port}"
    base_url = f"http://127.0.0.1:{api_port}/api/v2"
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "ingest", "sandbox", "--port", str(api_port),
         "--api-keys", API_KEY, "--store", "none"],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "sandbox.log").open("wb"),
    )  # fmt: skip
    try:
        _wait_for_port(api_port, sandbox)
        _say(f"embedded S3 (moto) at {endpoint}; Aionvision sandbox at {base_url}")
        objects = sample_bucket(args.objects, seed=args.seed, big_object_size=args.big_mib << 20)
        supported = [o for o in objects if o.supported]
        duplicates = sum(1 for o in objects if o.duplicate_of)
        # Distinct contents: copies, and the many identical tiny files, are stored once.
        distinct = len({o.data for o in supported if o.data is not None}) + sum(
            1 for o in supported if o.data is None
        )
        big = [o for o in objects if o.data is None]
        print(
            f"filling s3://{BUCKET}/ with {len(objects):,} objects: {len(supported):,} "
            f"supported (of which {duplicates} duplicate another's bytes), "
            f"{len(objects) - len(supported)} unsupported"
            + (f", one of {big[0].size / 1e6:,.0f} MB made on the fly" if big else ""),
            flush=True,
        )
        fill_bucket(endpoint, objects)

        state = workdir / "state"
        env = dict(os.environ)
        for name in [n for n in env if n.startswith(("INGEST_", "AIONVISION_"))]:
            del env[name]
        env.update(
            AWS_ENDPOINT_URL=endpoint,
            AIONVISION_BASE_URL=base_url,
            AIONVISION_API_KEY=API_KEY,
            XDG_DATA_HOME=str(workdir / "data"),
            INGEST_API__TIER="ENTERPRISE",
            INGEST_LOG__FORMAT="text",
            # The sandbox runs without a rate limit here; in production the tier's
            # requests/minute is the budget (see README, "Pacing").
            INGEST_WORKER__REQUESTS_PER_MINUTE="600000",
        )
        run_id = f"demo-{int(time.time())}"
        command = [
            "aion-ingest", "run", f"s3://{BUCKET}/", "--state", state.as_uri(), "--run-id",
            run_id, "--shards", str(args.shards), "-p", str(args.parallelism),
        ]  # fmt: skip
        _say("$ " + " ".join(command))
        code = subprocess.call([sys.executable, "-m", "ingest", *command[1:]], env=env)
        if code != 0:
            print(f"demo: aion-ingest run exited {code}; logs under {workdir / 'data'}")
            return code

        report = json.loads((state / "runs" / run_id / "report.json").read_text())
        files = asyncio.run(_server_files(base_url))
        _say("what happened")
        outcomes = report["by_outcome"]
        print(
            f"planned {report['planned_items']:,} objects "
            f"(filtered before planning: {report['filtered_by_reason'] or 'none'})\n"
            f"uploaded {outcomes['uploaded']:,}, skipped as duplicates "
            f"{outcomes['skipped_duplicate']:,}, failed {outcomes['failed']:,}\n"
            f"the sandbox now holds {len(files):,} files "
            f"(each distinct supported file once: {len(files) == distinct})\n"
            f"duration {time.monotonic() - started:,.1f} s in all"
        )
        _say("where the report is and how to read it")
        cli = cli_command()
        print(
            f"{report['report_csv']}\n"
            "  one row per planned object: shard, ordinal, bucket, key, size, outcome,\n"
            "  image_id, code, reason, http_status, attempts (like an S3 Batch Operations report)\n"
            f"{state.as_uri()}/runs/{run_id}/report.json: the totals\n"
            f"{cli} status {run_id} --state {state.as_uri()}   # per-shard progress\n"
            f"{cli} report {run_id} --state {state.as_uri()} --failed-only   # failures\n"
            f"{cli} runs --state {state.as_uri()}   # every run in this store"
        )
        ok = len(files) == distinct and outcomes["failed"] == 0
        return 0 if ok else 1
    finally:
        sandbox.terminate()
        try:
            sandbox.wait(10)
        except subprocess.TimeoutExpired:
            sandbox.kill()
        moto.stop()


if __name__ == "__main__":
    raise SystemExit(main())
