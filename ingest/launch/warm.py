"""Warm worker processes: the interpreter and the worker's imports started ahead of time.

``aion-ingest run`` plans first and starts its worker processes after; each then spends
about two seconds starting Python and importing the worker (aiohttp, httpx, the API
models) before its first request, while the key's budget goes unused. Planning takes about
as long, so the local launcher starts its processes while the run plans (:class:`WarmPool`):
each imports the modules named on its command line, then waits for one line on stdin, a
JSON document ``{"argv": [...], "env": {...}, "log": path or null}``, and becomes that
command: ``python -m MODULE ARGS`` (or ``python SCRIPT ARGS``) run by :mod:`runpy` as the
interpreter would, with exactly ``env`` as its environment and its stdout and stderr
appended to ``log``. End of input without a line (the run needed fewer workers, or
stopped): it exits 0.

Only the standard library here: the modules to load come as names, so the launcher layer
imports nothing above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import runpy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class WarmPool:
    """Up to ``size`` processes started now, each waiting for the command it becomes."""

    def __init__(self, preload: Sequence[str], env: Mapping[str, str]) -> None:
        self.preload = list(preload)
        self.env = dict(env)
        self._idle: list[asyncio.subprocess.Process] = []

    async def start(self, size: int) -> None:
        for _ in range(size):
            self._idle.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    __name__,
                    *self.preload,
                    env=self.env,
                    stdin=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
            )

    async def take(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path | None
    ) -> asyncio.subprocess.Process | None:
        """A warm process running ``argv`` with ``env``; None when none is left alive
        (the caller starts the command cold)."""
        while self._idle:
            proc = self._idle.pop(0)
            order = {"argv": list(argv), "env": dict(env), "log": log_path and str(log_path)}
            assert proc.stdin is not None
            try:
                proc.stdin.write(json.dumps(order).encode() + b"\n")
                await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):  # it died while warming up
                await proc.wait()
                log.warning("a warm worker process exited early (%s): cold start", proc.returncode)
                continue
            return proc
        return None

    async def close(self) -> None:
        """The processes not taken: end of input, so they exit 0."""
        idle, self._idle = self._idle, []
        for proc in idle:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.close()
        for proc in idle:
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def become(order: Mapping[str, object]) -> None:
    """Run the ordered command in this process (never returns normally from a script
    that exits; a module run to its end returns)."""
    argv = [str(a) for a in order["argv"]]  # type: ignore[attr-defined]
    env = order["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in env.items()})
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.close(stdin)
    if order.get("log"):
        fd = os.open(str(order["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    if len(argv) >= 3 and argv[1] == "-m":
        sys.argv = [argv[2], *argv[3:]]
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv[1:]
        runpy.run_path(argv[1], run_name="__main__")


def main() -> int:
    for name in sys.argv[1:]:
        importlib.import_module(name)
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    become(json.loads(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
