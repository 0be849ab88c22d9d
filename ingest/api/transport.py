"""The HTTP engine under the client: httpx's API over aiohttp's pool, or httpx's own.

Why two: measured here against a 200 ms server, plain httpx reached 26% of the ideal
request rate at 64 requests in flight and 4% at 256, at 11-21 ms CPU per request; over
the aiohttp transport (PyPI ``httpx-aiohttp``) 93% and 81% at about 0.7 ms
(``bench/http_engine.py``). ``ApiSettings.transport`` picks one, so the benchmark and a
user hitting a transport bug can switch without a code change.

Timeouts: connect and read come from the settings; there is no pool timeout (the worker's
concurrency already bounds how many requests wait for a connection, and a pool wait is
not a sign of trouble). Each read/write step may not stall longer than ``read_timeout``;
the whole request, answer included, is bounded by ``request_deadline`` in the edge (a
server trickling its answer a byte at a time never trips a read timeout).
"""

from __future__ import annotations

import logging

import httpx
from httpx_aiohttp import AiohttpTransport

from ingest.logs import redact_url
from ingest.settings import ApiSettings


def build_transport(settings: ApiSettings) -> httpx.AsyncBaseTransport:
    """The transport named by ``settings.transport``, sized by ``max_connections``."""
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
    )
    if settings.transport == "aiohttp":
        return AiohttpTransport(limits=limits, trust_env=True)
    return httpx.AsyncHTTPTransport(limits=limits, retries=0, trust_env=True)


def build_http_client(
    settings: ApiSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with no default auth header (see ``AionClient``)."""
    _install_log_filter()
    return httpx.AsyncClient(
        transport=transport or build_transport(settings),
        timeout=httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=None,
        ),
        follow_redirects=False,
        headers={"User-Agent": "aion-ingest/0.1"},
    )


class _RedactUrls(logging.Filter):
    """httpx logs each request's full URL at INFO: drop presigned signatures from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


_FILTER = _RedactUrls()


def _install_log_filter() -> None:
    logger = logging.getLogger("httpx")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def connection_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a refused connection: nothing listens there.

    Engines wrap it differently (httpx-aiohttp even calls it a ConnectTimeout), so the
    chain of causes is searched for the operating system's own error."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe_transport_error(exc: BaseException) -> str:
    """A one-line description of a network failure, without URLs or headers."""
    if connection_refused(exc):
        return "connection refused"
    kind: dict[type[BaseException], str] = {
        httpx.ConnectTimeout: "timed out connecting",
        httpx.ReadTimeout: "timed out waiting for the answer",
        httpx.WriteTimeout: "timed out sending the request",
        httpx.ConnectError: "could not connect",
        httpx.RemoteProtocolError: "the connection was dropped",
        httpx.ReadError: "the connection broke while reading",
        httpx.WriteError: "the connection broke while sending",
        TimeoutError: "timed out waiting for the answer",  # aiohttp's own timeouts
    }
    for cls, text in kind.items():
        if isinstance(exc, cls):
            return text
    return f"network error ({type(exc).__name__})"
