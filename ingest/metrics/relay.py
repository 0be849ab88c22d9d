"""One ``/metrics`` for a whole local run: the run's process re-exports its workers' series.

``aion-ingest run`` starts worker processes on one machine; a user points Prometheus at one
port. Each worker serves its own ``/metrics`` on a loopback port the launcher chose; before
each scrape of the run's port, :meth:`WorkerRelay.refresh` reads them all (concurrently,
short timeout) and :meth:`WorkerRelay.collect` re-exports their families merged. A worker
that exited keeps its last figures here (its final counters), so a short shard is never
lost between two scrapes; a new process on the same shard replaces them (a counter reset,
which ``rate()`` handles). Worker series already carry ``run_id`` and ``shard``.

Plain asyncio streams for the GET (no second HTTP client in this folder); failures are
logged once per shard and the last figures stay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

_TIMEOUT = 2.0
_MAX_BODY = 8 * 1024 * 1024


async def fetch_metrics(host: str, port: int) -> str:
    """``GET /metrics`` of ``host:port``: the body as text (raises OSError on trouble)."""

    async def get() -> str:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read(_MAX_BODY)
            while chunk := await reader.read(_MAX_BODY):
                raw += chunk
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].split()
        if len(status) < 2 or status[1] != b"200":
            raise OSError(f"answered {head[:60]!r}")
        return body.decode()

    try:
        return await asyncio.wait_for(get(), _TIMEOUT)
    except TimeoutError:
        raise OSError(f"no answer in {_TIMEOUT:.0f} s") from None


class WorkerRelay(Collector):
    """Re-exports the ``/metrics`` of local workers, by shard."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.ports: dict[int, int] = {}
        self._families: dict[int, list[Metric]] = {}
        self._warned: set[int] = set()

    def add(self, shard: int, port: int) -> None:
        """Worker of ``shard`` now serves on ``port`` (a relaunch replaces the old one)."""
        self.ports[shard] = port

    def remove(self, shard: int) -> None:
        """Stop asking ``shard``'s worker (it exited); its last figures stay exported."""
        self.ports.pop(shard, None)

    async def refresh(self) -> None:
        """Read every live worker's figures; called before each scrape of the run's port."""
        shards = list(self.ports.items())
        answers = await asyncio.gather(
            *(fetch_metrics(self.host, port) for _, port in shards), return_exceptions=True
        )
        for (shard, port), answer in zip(shards, answers, strict=True):
            if isinstance(answer, BaseException):
                if shard not in self._warned and self.ports.get(shard) == port:
                    self._warned.add(shard)
                    log.warning(
                        "cannot read shard %d's metrics on port %d: %s", shard, port, answer
                    )
                continue
            try:
                self._families[shard] = list(text_string_to_metric_families(answer))
            except ValueError as exc:
                log.warning("shard %d served unreadable metrics: %s", shard, exc)

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for shard in sorted(self._families):
            for fam in self._families[shard]:
                into = merged.get(fam.name)
                if into is None:
                    into = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type)
                into.samples.extend(fam.samples)
        yield from merged.values()
