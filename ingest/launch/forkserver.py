"""A fork server for local worker processes: the worker's modules imported once, each
worker a fork of that process.

``aion-ingest run`` starts its workers together on the user's machine, and each spent
about 0.7 s of CPU importing the same modules (pydantic, aiohttp, httpx, botocore, the
project) before its first request: on 2 cores, four workers importing at once held the
first upload back by ~2 s (``bench/worker_budget.py --timeline``). The server imports
them once, while the run plans (the plan mostly waits on the S3 listing), then forks one
child per worker.

A child is a real process, as a spawned one is: its own pid, its own session (a Ctrl-C at
the terminal reaches only the launcher), stdin from /dev/null, stdout and stderr appended
to its log file, exactly the environment it was given, ``sys.argv`` as ``python`` would
set it; it runs ``python -m MODULE ARGS`` or ``python SCRIPT ARGS`` the way the
interpreter does (``runpy``), and exits with that code (an uncaught exception: its
traceback and 1). Signals go to its pid (SIGTERM, SIGKILL); the server, its parent, reaps
it and reports the exit status, a signal as ``-N`` (asyncio's convention), to the
launcher. Forking is safe here because the server has one thread and no event loop.

Protocol (JSON lines): the launcher writes ``{"argv", "env", "log"}``; the server answers
``{"started": pid}`` (or ``{"error": text}``) in order, and ``{"exited": pid, "code": n}``
whenever a child ends. When its stdin closes, the server exits once its children have.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import json
import logging
import os
import runpy
import select
import signal
import sys
import traceback
from typing import Any, NoReturn

log = logging.getLogger(__name__)

# SIGINT as the interpreter set it at start (KeyboardInterrupt, or ignored when the launcher
# ignores it): what a worker started by the launcher would have; the server then ignores it.
_SIGINT_AT_START = signal.getsignal(signal.SIGINT)


def runnable(argv: list[str]) -> bool:
    """Whether a child of the server can run ``argv`` as the interpreter would: this
    interpreter with ``-m MODULE`` or a script path, nothing else."""
    if len(argv) < 2 or argv[0] != sys.executable:
        return False
    if argv[1] == "-m":
        return len(argv) >= 3
    return not argv[1].startswith("-")


def serve(preload: list[str]) -> int:
    """The server's loop, on stdin and stdout; returns once stdin closed and the
    children have ended."""
    for module in preload:  # what the children would each import: once, here
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only wakes the select below
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher decides what stops
    children: set[int] = set()
    pending = b""
    reading = True

    def send(doc: dict[str, Any]) -> None:
        data = (json.dumps(doc) + "\n").encode()
        while data:
            data = data[os.write(1, data) :]

    while reading or children:
        ready, _, _ = select.select([0, wake_r] if reading else [wake_r], [], [])
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
        if 0 in ready:
            chunk = os.read(0, 65536)
            reading = bool(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                try:
                    pid = _fork(json.loads(line), (wake_r, wake_w))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    send({"error": f"{type(exc).__name__}: {exc}"})
                    continue
                children.add(pid)
                send({"started": pid})
        while children:  # reap: every ended child, reported once
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            send({"exited": pid, "code": os.waitstatus_to_exitcode(status)})
    return 0


def _fork(spec: dict[str, Any], wake: tuple[int, int]) -> int:
    argv, env, log_path = list(spec["argv"]), dict(spec["env"]), str(spec["log"])
    if not runnable(argv):
        raise ValueError(f"not a python -m or script command: {argv[:2]}")
    out = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(argv, env, out, wake)
    os.close(out)
    return pid


def _child(argv: list[str], env: dict[str, str], out: int, wake: tuple[int, int]) -> NoReturn:
    """In the forked child: become the process ``argv`` would have started, run it, exit."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, _SIGINT_AT_START)  # as python set it in the server
        for fd in wake:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.environ.clear()
        os.environ.update(env)
        code = _run(argv)
    except BaseException:  # as the interpreter: a traceback, then exit 1
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def _run(argv: list[str]) -> int:
    """``argv`` run as the interpreter runs it; its exit code."""
    try:
        if argv[1] == "-m":
            sys.argv = [argv[2], *argv[3:]]  # runpy sets argv[0] to the module's path
            runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
        else:
            sys.argv = argv[1:]
            sys.path[0] = os.path.dirname(os.path.abspath(argv[1]))
            runpy.run_path(argv[1], run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc.code)
    except BaseException as exc:  # as the interpreter: the traceback from the script on
        tb = exc.__traceback__
        ours = (__file__, runpy.__file__, "<frozen runpy>")
        while tb is not None and tb.tb_frame.f_code.co_filename in ours:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        return 1
    return 0


def _exit_code(value: object) -> int:
    """The process exit code ``SystemExit(value)`` gives (None 0, a number, else 1 after
    printing it, as the interpreter does)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


# --- the launcher's side ---------------------------------------------------------------


class ForkedProcess:
    """A child of the fork server, as the launcher sees it: the part of
    ``asyncio.subprocess.Process`` it uses (``pid``, ``returncode``, ``wait``,
    ``send_signal``, ``kill``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended = asyncio.get_running_loop().create_future()

    def _exited(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._ended.set_result(code)

    async def wait(self) -> int:
        return int(await asyncio.shield(self._ended))

    def send_signal(self, signum: int) -> None:
        if self.returncode is not None:
            raise ProcessLookupError(self.pid)  # as asyncio: never a reused pid
        os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The launcher's handle on one fork server process (``start``, ``spawn``,
    ``aclose``). Should the server die, its children left are killed and report
    ``-SIGKILL``: nobody could tell their exit any more."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._started: collections.deque[asyncio.Future[int]] = collections.deque()
        self._children: dict[int, ForkedProcess] = {}
        self._early: dict[int, int] = {}  # exits read before their start was handled
        self._reader = asyncio.create_task(self._read(), name="fork-server")

    @classmethod
    async def start(cls, preload: list[str], env: dict[str, str] | None = None) -> ForkServer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            *preload,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        return cls(proc)

    async def spawn(self, argv: list[str], env: dict[str, str], log_path: str) -> ForkedProcess:
        """A child running ``argv`` (see :func:`runnable`) with ``env``, output to ``log_path``."""
        if self._reader.done():
            raise OSError("the fork server has exited")
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._started.append(started)
        assert self._proc.stdin is not None
        self._proc.stdin.write(
            (json.dumps({"argv": argv, "env": env, "log": log_path}) + "\n").encode()
        )
        await self._proc.stdin.drain()
        pid = await started
        child = ForkedProcess(pid)
        self._children[pid] = child
        if pid in self._early:
            child._exited(self._early.pop(pid))
        return child

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        try:
            async for line in self._proc.stdout:
                doc = json.loads(line)
                if "exited" in doc:
                    pid, code = int(doc["exited"]), int(doc["code"])
                    child = self._children.pop(pid, None)
                    if child is None:
                        self._early[pid] = code
                    else:
                        child._exited(code)
                elif self._started:
                    started = self._started.popleft()
                    if "started" in doc:
                        started.set_result(int(doc["started"]))
                    else:
                        started.set_exception(OSError(f"fork server: {doc.get('error')}"))
        finally:
            self._orphaned()

    def _orphaned(self) -> None:
        """The server is gone: what it would have reported can no longer be known."""
        for started in self._started:
            if not started.done():
                started.set_exception(OSError("the fork server has exited"))
        self._started.clear()
        for pid, child in list(self._children.items()):
            if child.returncode is None:
                log.warning("fork server exited: killing its worker process %d", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                child._exited(-signal.SIGKILL)
        self._children.clear()

    async def aclose(self, grace_seconds: float = 10.0) -> None:
        """Close the server's stdin; it exits once its children have (else killed after
        ``grace_seconds``)."""
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), grace_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


if __name__ == "__main__":
    code = serve(sys.argv[1:])
    # Nothing left to flush (replies are unbuffered writes): skip the interpreter's
    # teardown of everything imported for the children, ~0.3 s the run would wait for.
    os._exit(code)
