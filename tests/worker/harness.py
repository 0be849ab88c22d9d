"""Real worker processes for the kill, fault and zombie tests.

A :class:`Run` is one planned run in a state store (a folder or a moto bucket) with the
environment its workers get; :meth:`Run.start` starts ``python -m ingest work`` as a
subprocess with stderr captured to a file (so a test can grep everything a run wrote), and
the read-back helpers look at the store the way the report does.

Waiting is by observation, never by a fixed sleep: :func:`wait_for` polls a predicate (the
sandbox's stored files, the checkpoint on disk, a process's exit) every few milliseconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from ingest.cli import main
from ingest.items import ItemResult, Outcome
from ingest.settings import Settings
from ingest.state import open_state
from ingest.state.base import RunLayout
from ingest.state.records import Checkpoint, decode_shard, read_plan, read_results

REPO = Path(__file__).resolve().parents[2]
_counter = itertools.count()

#: Fast, observable workers: small flushes, a large request budget, short backoffs.
FAST_ENV = {
    "INGEST_API__TIER": "ENTERPRISE",
    "INGEST_WORKER__REQUESTS_PER_MINUTE": "600000",
    "INGEST_WORKER__FLUSH_SECONDS": "0.2",
    "INGEST_WORKER__FLUSH_ITEMS": "100",
    "INGEST_API__BACKOFF_BASE": "0.01",
    "INGEST_API__BACKOFF_MAX": "0.2",
    "INGEST_LOG__FORMAT": "json",
    "INGEST_FILTERS__SUPPORTED_ONLY": "false",
    # Many worker tests count requests and read image ids from the shard's results, which
    # 'fetch' gives at once ('list', the default, resolves them after the workers:
    # test_ids.py and tests/run cover it).
    "INGEST_WORKER__BATCH_RESULTS": "fetch",
}


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.005)


@dataclasses.dataclass
class Worker:
    """One ``aion-ingest work`` subprocess."""

    proc: subprocess.Popen[bytes]
    stderr_path: Path
    _stderr: IO[bytes]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 120.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"worker did not exit in {timeout:.0f}s:\n{self.stderr()}"
            ) from None
        finally:
            if self.proc.returncode is not None:
                self._stderr.close()

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")


@dataclasses.dataclass
class Run:
    """A run id in a state store, and the environment its processes get."""

    state: str  # file:///... or s3://bucket/prefix
    run_id: str
    env: dict[str, str]
    logs: Path
    workers: list[Worker] = dataclasses.field(default_factory=list)

    @classmethod
    def create(cls, tmp_path: Path, sandbox: Any, state: str | None = None, **env: str) -> Run:
        run_id = f"r{next(_counter)}"
        full = {**os.environ, **FAST_ENV, **env}
        full["AIONVISION_BASE_URL"] = sandbox.base_url
        full["AIONVISION_API_KEY"] = sandbox.api_key
        full.pop("JOB_COMPLETION_INDEX", None)
        logs = tmp_path / f"logs-{run_id}"
        logs.mkdir(parents=True)
        return cls(state or f"file://{tmp_path / 'state'}", run_id, full, logs)

    def _args(self) -> list[str]:
        return ["--state", self.state, "--run-id", self.run_id]

    def plan(self, source: str, *extra: str) -> None:
        """Plan in this process (fast), with this run's environment applied meanwhile."""
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            code = main(["plan", source, *self._args(), *extra])
        finally:
            os.environ.clear()
            os.environ.update(saved)
        assert code == 0, f"plan exited {code}"

    def start(self, index: int = 0, **env: str) -> Worker:
        path = self.logs / f"worker-{len(self.workers)}.stderr"
        f = path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", "work", *self._args(), "--index", str(index)],
            env={**self.env, **env},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=f,
        )
        worker = Worker(proc, path, f)
        self.workers.append(worker)
        return worker

    def work(self, index: int = 0, timeout: float = 120.0, **env: str) -> tuple[int, str]:
        """Run a worker to its end: (exit code, stderr)."""
        w = self.start(index, **env)
        code = w.wait(timeout)
        return code, w.stderr()

    def finish(self, index: int = 0, attempts: int = 5, **env: str) -> None:
        """Rerun the index until it exits 0 (a transient exit 1 is retried, as by the Job)."""
        for _ in range(attempts):
            code, err = self.work(index, **env)
            if code == 0:
                return
            assert code == 1, f"worker exited {code}:\n{err[-3000:]}"
        raise AssertionError(f"index {index} not done after {attempts} attempts:\n{err[-3000:]}")

    def stop_all(self) -> None:
        for w in self.workers:
            if w.alive():
                w.proc.kill()
                w.proc.wait()

    # --- reading the store back -----------------------------------------------------------

    def _read(self, fn: Callable[[Any], Any]) -> Any:
        async def go() -> Any:
            settings = Settings(state=self.state)
            async with open_state(self.state, settings) as store:
                return await fn(store)

        saved = dict(os.environ)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("AWS_")})
        try:
            return asyncio.run(go())
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def results(self, index: int = 0) -> dict[int, ItemResult]:
        layout = RunLayout(self.run_id)
        out: dict[int, ItemResult] = self._read(lambda s: read_results(s, layout, index))
        return out

    def checkpoint(self, index: int = 0) -> Checkpoint | None:
        async def get(store: Any) -> Checkpoint | None:
            blob = await store.get(RunLayout(self.run_id).checkpoint(index))
            return None if blob is None else Checkpoint.from_bytes(blob.data)

        cp: Checkpoint | None = self._read(get)
        return cp

    def items(self, index: int = 0) -> list[Any]:
        async def get(store: Any) -> list[Any]:
            plan = await read_plan(store, self.run_id)
            blob = await store.get(RunLayout(self.run_id).shard(index, plan.attempt))
            assert blob is not None
            return list(decode_shard(blob.data))

        out: list[Any] = self._read(get)
        return out

    def local_checkpoint(self, index: int = 0) -> Checkpoint | None:
        """The checkpoint of a folder store, read without an event loop (for polling)."""
        path = self.state_dir() / RunLayout(self.run_id).checkpoint(index)
        try:
            return Checkpoint.from_bytes(path.read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def state_dir(self) -> Path:
        assert self.state.startswith("file://"), self.state
        return Path(self.state[len("file://") :])


def written_text(paths: Iterable[Path]) -> Iterable[tuple[Path, bytes]]:
    """(path, bytes) of every file under ``paths``, gzip parts decompressed."""
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            data = p.read_bytes()
            yield p, gzip.decompress(data) if p.suffix == ".gz" else data


def assert_exactly_once(run: Run, sandbox: Any, expected_names: set[str], index: int = 0) -> None:
    """Every planned item has one outcome; every supported item is stored once, none missing."""
    items = run.items(index)
    results = run.results(index)
    assert sorted(results) == list(range(len(items))), "an ordinal is missing from the results"
    for o, r in results.items():
        assert r.key == items[o].key
    bad = {o: r for o, r in results.items() if r.outcome is Outcome.FAILED}
    assert not bad, f"failed outcomes: {list(bad.values())[:3]}"
    files = sandbox.files()
    names = [f["filename"] for f in files]
    hashes = [f["sha256"] for f in files]
    assert len(set(hashes)) == len(hashes), "a file was stored twice (same sha256)"
    assert len(set(names)) == len(names), "a file was stored twice (same filename)"
    assert set(names) == expected_names
    cp = run.checkpoint(index)
    assert cp is not None and cp.is_complete(len(items))
