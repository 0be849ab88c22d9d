"""Running `aion-ingest run` as a real subprocess, and finding its worker processes."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.demo.samples import make_jpeg, make_png


def make_source(root: Path, n: int, seed: int = 1) -> list[Path]:
    """``n`` small distinct images in a nested folder tree, plus one unsupported file."""
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        sub = root / f"site {i % 3}" / f"day-{i % 5}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 2:
            path, data = sub / f"img-{i:04d}.jpg", make_jpeg(rng, 800 + i)
        else:
            path, data = sub / f"plan-{i:04d}.png", make_png(rng, 8, 8 + i % 7)
        path.write_bytes(data)
        paths.append(path)
    (root / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return paths


def run_env(tmp_path: Path, sandbox: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "AIONVISION_"))}
    env.pop("JOB_COMPLETION_INDEX", None)
    env.update(
        AIONVISION_BASE_URL=sandbox.base_url,
        AIONVISION_API_KEY=sandbox.api_key,
        XDG_DATA_HOME=str(tmp_path / "xdg"),
        INGEST_API__TIER="ENTERPRISE",
        INGEST_WORKER__REQUESTS_PER_MINUTE="600000",
        INGEST_WORKER__FLUSH_SECONDS="0.2",
        INGEST_WORKER__FLUSH_ITEMS="20",
        INGEST_LOG__FORMAT="json",
    )
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ingest", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll another process's observable progress (there is no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def worker_pids(run_id: str) -> list[int]:
    """PIDs of live `aion-ingest work` processes of ``run_id`` (read from /proc): by their
    command line, or, for a fork of the fork server (ingest/launch/forkserver.py: its
    command line is the server's), by their stdout, the run's worker log."""
    pids = []
    logs = f"/aion-ingest/logs/{run_id}/worker-"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            stdout = os.readlink(entry / "fd" / "1")
        except OSError:
            continue
        by_argv = b"work" in argv and run_id.encode() in argv
        if (by_argv or logs in stdout) and state != "Z":
            pids.append(int(entry.name))
    return pids
