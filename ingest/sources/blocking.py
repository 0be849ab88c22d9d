"""Blocking file calls, run where a stuck one cannot hold the process.

``asyncio.to_thread`` runs calls in the loop's default pool, whose threads the interpreter
joins at exit: one ``read`` that never returns (a FIFO, a hung NFS mount, a dying disk)
kept a worker alive past its SIGTERM forever. Here the calls run on daemon threads: a
cancelled caller goes on at once, the stuck thread is abandoned and dies with the process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]


class DaemonPool:
    """At most ``max_threads`` daemon threads taking calls from one queue; threads start
    on demand (a stuck call holds one thread; the others go on)."""

    def __init__(self, max_threads: int = 32) -> None:
        self.max_threads = max_threads
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._idle == 0 and self._threads < self.max_threads:
                self._threads += 1
                threading.Thread(target=self._serve, name="source-io", daemon=True).start()
        self._jobs.put((future, fn, args))
        return future

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            future, fn, args = self._jobs.get()
            with self._lock:
                self._idle -= 1
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)


_POOL = DaemonPool()


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a daemon thread; cancelling the caller abandons the call."""
    return await asyncio.wrap_future(_POOL.submit(fn, *args))


def fire_and_forget(fn: Callable[..., Any], *args: Any) -> None:
    """``fn(*args)`` on a daemon thread, nobody waiting (closing a file a stuck read holds)."""
    _POOL.submit(fn, *args)
