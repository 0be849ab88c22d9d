"""``/metrics`` on the event loop: no thread, so collectors read the loop's state safely.

A scrape is one short request; the answer is rendered on the loop between two pipeline
steps (a few hundred series, well under a millisecond). HTTP/1.1 is kept minimal: ``GET``
or ``HEAD`` of ``/metrics`` (``/`` too), one answer per connection, then close.

Nothing here may fail the run: a port already taken or an address that cannot be bound
logs one warning and the work goes on without metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from ingest.settings import MetricsSettings

log = logging.getLogger(__name__)

_MAX_HEADER = 16 * 1024
_READ_TIMEOUT = 10.0


@contextlib.asynccontextmanager
async def serve_metrics(
    settings: MetricsSettings,
    *collectors: Collector,
    port: int | None = None,
    before_scrape: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[MetricsServer | None]:
    """Serve ``collectors`` on ``/metrics`` inside the block, when a port is set.

    ``port`` overrides ``settings.port``; with neither, nothing is served (yields None).
    ``before_scrape`` is awaited before each answer (e.g. ``WorkerRelay.refresh``).
    """
    port = settings.port if port is None else port
    if port is None:
        yield None
        return
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    async with MetricsServer(registry, settings.address, port, before_scrape) as server:
        yield server


class MetricsServer:
    """``async with MetricsServer(registry, host, port) as server``; ``server.port`` is bound."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        before_scrape: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.registry = registry
        self.before_scrape = before_scrape
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> bool:
        """Listen; False (after one warning) when the port cannot be had."""
        try:
            self._server = await asyncio.start_server(
                self._handle, self.host, self.requested_port, reuse_address=True
            )
        except OSError as exc:
            log.warning(
                "cannot serve /metrics on %s:%d (%s); going on without metrics",
                self.host,
                self.requested_port,
                exc.strerror or exc,
            )
            return False
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("serving /metrics on http://%s:%d/metrics", self.host, self.port)
        return True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            if self.before_scrape is not None:
                await self.before_scrape()
            writer.write(self._answer(head[:_MAX_HEADER]))
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the scraper went away; nothing to say about it
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> bytes:
        parts = head.split(b"\r\n", 1)[0].split()
        method = parts[0] if parts else b""
        path = parts[1].split(b"?", 1)[0] if len(parts) > 1 else b""
        if method not in (b"GET", b"HEAD"):
            return _response(405, b"text/plain", b"only GET\n")
        if path not in (b"/metrics", b"/"):
            return _response(404, b"text/plain", b"try /metrics\n")
        body = generate_latest(self.registry)
        return _response(200, CONTENT_TYPE_LATEST.encode(), b"" if method == b"HEAD" else body)


def _response(status: int, content_type: bytes, body: bytes) -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 405: b"Method Not Allowed"}[status]
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (status, reason, content_type, len(body))
        + body
    )
