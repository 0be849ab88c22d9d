"""The embedded S3 server of the demo and the tests: moto's, with its writes made atomic.

moto checks a conditional write (``If-None-Match: *``, ``If-Match: <etag>``) and then stores
the object as two steps, on one thread per request: two writers racing on one key can both
pass the check, so a compare-and-swap loses an update now and then (seen under load). Real
S3 decides the condition and the write as one. Here every write (PUT, POST, DELETE) runs
under one lock, which makes moto's check-then-store atomic like S3's; reads stay parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.server import ThreadedMotoServer

_WRITES = frozenset({"PUT", "POST", "DELETE"})


class AtomicMotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` whose writes are serialized (see the module's docstring)."""

    def start(self) -> None:
        super().start()
        server = self._server
        assert server is not None
        inner: Callable[..., Iterable[bytes]] = server.app
        lock = threading.Lock()

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("REQUEST_METHOD") not in _WRITES:
                return inner(environ, start_response)
            with lock:
                return inner(environ, start_response)

        server.app = app
