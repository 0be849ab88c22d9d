"""Recurring imports end to end: `aion-ingest run --ledger` rounds on real parts.

moto's ThreadedMotoServer is the S3 source (its WSGI app wrapped to count object GETs),
the sandbox on a free loopback port is the API (its app wrapped to log every API request),
the state store is a folder, and `aion-ingest run` starts real worker processes.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.demo.s3_server import AtomicMotoServer
from ingest.demo.samples import make_jpeg
from tests.fixtures.ports import free_port
from tests.fixtures.s3 import S3Server
from tests.run.helpers import run_env, start

pytestmark = [pytest.mark.timeout(280), pytest.mark.slow]

LEDGER = "photos-nightly"


class CountingS3:
    """A moto server of its own whose object GETs (bodies read) are counted."""

    def __init__(self) -> None:
        port = free_port()
        self.server = AtomicMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.object_gets = 0
        self._lock = threading.Lock()
        wsgi = self.server._server
        assert wsgi is not None
        inner = wsgi.app

        def counting(environ: dict[str, Any], start_response: Any) -> Any:
            parts = environ.get("PATH_INFO", "").strip("/").split("/", 1)
            if environ["REQUEST_METHOD"] == "GET" and len(parts) == 2 and parts[1]:
                with self._lock:
                    self.object_gets += 1
            return inner(environ, start_response)

        wsgi.app = counting

    def client(self) -> Any:
        return S3Server(self.endpoint_url).client()


class RequestLog:
    """Every API request the sandbox serves, (method, path), in order (admin calls left
    out), and the file names of the multipart file parts their bodies carried."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []
        self.filenames: list[str] = []

    def clear(self) -> None:
        self.requests.clear()
        self.filenames.clear()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox/"):
            await self.app(scope, receive, send)
            return
        self.requests.append((scope["method"], scope["path"]))
        body = bytearray()

        async def recording() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        await self.app(scope, recording, send)
        self.filenames += [n.decode() for n in _FILENAME.findall(body)]


_FILENAME = re.compile(rb'Content-Disposition: form-data; name="[^"]*"; filename="([^"]*)"', re.I)


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[CountingS3]:  # s3_server: the fake credentials
    server = CountingS3()
    try:
        yield server
    finally:
        server.server.stop()


@pytest.fixture
def api_log(sandbox: Any) -> Iterator[RequestLog]:
    log = RequestLog(sandbox.contract.app)
    sandbox.contract.app = log
    try:
        yield log
    finally:
        sandbox.contract.app = log.app


class Bucket:
    """The source bucket and what each key holds now (for checking the server's files)."""

    def __init__(self, s3: CountingS3, name: str) -> None:
        self.s3, self.name = s3, name
        s3.client().create_bucket(Bucket=name)
        self.rng = random.Random(name)
        self.bodies: dict[str, bytes] = {}

    def put(self, key: str) -> None:
        body = make_jpeg(self.rng, 4000 + 37 * len(self.bodies))
        self.s3.client().put_object(Bucket=self.name, Key=key, Body=body)
        self.bodies[key] = body

    def delete(self, key: str) -> None:
        self.s3.client().delete_object(Bucket=self.name, Key=key)


@dataclasses.dataclass
class Import:
    """One recurring import's parts: its source bucket, state folder and environment."""

    bucket: Bucket
    state: Path
    env: dict[str, str]


@pytest.fixture
def make_import(tmp_path: Path, sandbox: Any, s3: CountingS3) -> Callable[[str, str, int], Import]:
    """``make_import(bucket, prefix, n)``: a bucket holding ``<prefix>/img-000.jpg``... n
    JPEGs, a state folder, and the environment `aion-ingest` runs in against both."""

    def make(name: str, prefix: str, count: int) -> Import:
        bucket = Bucket(s3, name)
        for i in range(count):
            bucket.put(f"{prefix}/img-{i:03d}.jpg")
        env = run_env(tmp_path, sandbox, AWS_ENDPOINT_URL=s3.endpoint_url)
        return Import(bucket, tmp_path / "state", env)

    return make


def _run(args: list[str], env: dict[str, str], timeout: float = 200) -> tuple[int, str, str]:
    proc = start(args, env)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, out, err


def _run_args(bucket: Bucket, state: Path, run_id: str) -> list[str]:
    """`aion-ingest run` of the import, two shards, two worker processes."""
    return [
        "run", f"s3://{bucket.name}/", "--state", f"file://{state}", "--run-id", run_id,
        "--ledger", LEDGER, "--shards", "2", "-p", "2",
    ]  # fmt: skip


def _round(bucket: Bucket, state: Path, env: dict[str, str], run_id: str) -> dict[str, Any]:
    code, _, err = _run(_run_args(bucket, state, run_id), env)
    assert code == 0, err[-3000:]
    report: dict[str, Any] = json.loads((state / "runs" / run_id / "report.json").read_text())
    return report


def _plan(state: Path, run_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((state / "runs" / run_id / "run.json").read_text())
    return doc


def _export(state: Path, env: dict[str, str], tmp_path: Path) -> list[dict[str, str]]:
    target = tmp_path / "map.csv"
    code, _, err = _run(
        ["ledger", LEDGER, "--state", f"file://{state}", "--export", str(target)], env
    )
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))


def _assert_export_matches_server(rows: list[dict[str, str]], bucket: Bucket, sandbox: Any) -> None:
    """One row per key ever sent; its image id is the server's file with the key's bytes."""
    assert len(rows) == len({r["key"] for r in rows})
    assert {r["key"] for r in rows} == set(bucket.bodies)
    by_id = {f["id"]: f for f in sandbox.files()}
    for row in rows:
        assert row["image_id"] in by_id, row
        assert (
            by_id[row["image_id"]]["sha256"]
            == hashlib.sha256(bucket.bodies[row["key"]]).hexdigest()
        ), row["key"]


def _uploads(log: RequestLog) -> list[str]:
    return [path for method, path in log.requests if method in ("POST", "PUT")]


def test_three_scheduled_rounds_send_only_what_is_new(
    tmp_path: Path,
    sandbox: Any,
    s3: CountingS3,
    api_log: RequestLog,
    make_import: Callable[[str, str, int], Import],
) -> None:
    imp = make_import("rounds", "cam", 30)
    bucket, state, env = imp.bucket, imp.state, imp.env

    first = _round(bucket, state, env, "night-1")
    assert first["by_outcome"]["uploaded"] == 30, first
    assert _plan(state, "night-1")["new"] == 30
    assert len(sandbox.files()) == 30

    for i in range(30, 40):
        bucket.put(f"cam/img-{i:03d}.jpg")
    bucket.put("cam/img-005.jpg")  # overwritten: new bytes, new ETag
    bucket.delete("cam/img-007.jpg")
    deleted_body = bucket.bodies["cam/img-007.jpg"]
    before = {f["id"] for f in sandbox.files()}
    api_log.clear()

    second = _round(bucket, state, env, "night-2")
    plan = _plan(state, "night-2")
    assert (plan["new"], plan["changed"], plan["unchanged"]) == (10, 1, 28)
    assert plan["items"] == 11
    assert second["by_outcome"]["uploaded"] == 11
    assert second["unchanged"] == 28
    sent = [f for f in sandbox.files() if f["id"] not in before]
    expected = {hashlib.sha256(bucket.bodies[f"cam/img-{i:03d}.jpg"]).hexdigest()
                for i in [*range(30, 40), 5]}  # fmt: skip
    assert {f["sha256"] for f in sent} == expected
    assert len(sent) == 11
    assert _uploads(api_log)  # the log saw round 2's upload requests
    # ... and their bodies carried exactly those 11 files (a retry may repeat one)
    assert set(api_log.filenames) == {f["filename"] for f in sent}

    api_log.clear()
    gets_before = s3.object_gets
    third = _round(bucket, state, env, "night-3")
    plan = _plan(state, "night-3")
    assert (plan["items"], plan["new"], plan["changed"], plan["unchanged"]) == (0, 0, 0, 39)
    assert api_log.requests == [] and api_log.filenames == []  # not even a quota-check
    assert s3.object_gets == gets_before  # no object body read
    assert third["unchanged"] == 39
    assert third["planned_items"] == 0

    bucket.bodies["cam/img-007.jpg"] = deleted_body  # still in the ledger: it was sent
    _assert_export_matches_server(_export(state, env, tmp_path), bucket, sandbox)


def test_sigkill_during_the_ledger_merge_then_the_next_run(
    tmp_path: Path, sandbox: Any, make_import: Callable[[str, str, int], Import]
) -> None:
    imp = make_import("killed", "k", 40)
    bucket, state, env = imp.bucket, imp.state, imp.env
    # the real `run`, its merge stopped just before the manifest swap (segment written)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.run_paused_in_merge",
         *_run_args(bucket, state, "first")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "SWAP\n"
        assert (state / "runs" / "first" / "report.json").exists()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert not (state / "runs" / "first" / "ledger.json").exists()  # the merge never ended

    code, _, err = _run(_run_args(bucket, state, "second"), env)
    assert code == 0, err[-3000:]
    assert "merged the unfinished run first first" in err
    plan = _plan(state, "second")
    assert plan["items"] == 0 and plan["unchanged"] == 40  # nothing sent twice
    names = collections.Counter(f["sha256"] for f in sandbox.files())
    assert len(names) == 40 and max(names.values()) == 1
    _assert_export_matches_server(_export(state, env, tmp_path), bucket, sandbox)  # none lost


def test_two_runs_of_one_import_at_once_keep_the_ledger_consistent(
    tmp_path: Path, sandbox: Any, make_import: Callable[[str, str, int], Import]
) -> None:
    imp = make_import("twice", "t", 40)
    bucket, state, env = imp.bucket, imp.state, imp.env
    procs = [start(_run_args(bucket, state, run_id), env) for run_id in ("left", "right")]
    try:
        results = [p.communicate(timeout=220) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    # one namespace for the import: the API answered the second sending of a file as the
    # same upload, so every object is on the server once
    names = collections.Counter(f["sha256"] for f in sandbox.files())
    assert len(names) == 40 and max(names.values()) == 1
    _assert_export_matches_server(_export(state, env, tmp_path), bucket, sandbox)
    # and the next run finds nothing to send
    report = _round(bucket, state, env, "after")
    assert report["planned_items"] == 0 and report["unchanged"] == 40
