"""One ``/metrics`` for a whole local run: the run's process re-exports its workers' series.

``aion-ingest run`` starts worker processes on one machine; a user points Prometheus at one
port. Each worker serves its own ``/metrics`` on a loopback port the launcher chose; before
each scrape of the run's port, :meth:`WorkerRelay.refresh` reads them all (concurrently,
short timeout) and :meth:`WorkerRelay.collect` re-exports their families merged. Worker
series already carry ``run_id`` and ``shard``.

A worker that exited (it stopped answering, or :meth:`WorkerRelay.remove`) keeps its last
figures here until they were served in at least one scrape AND ``linger`` seconds passed
since it went; then its series go. Why both, and why that keeps counters right for
Prometheus:

- Dropping a series is what Prometheus expects of a finished target: the series goes stale,
  ``rate()`` stops, ``increase()`` and ``last_over_time()`` keep what was scraped. No counter
  ever goes down by it; a drop is not a reset.
- What must not happen is a drop before the final figures were scraped: the objects counted
  between the last scrape and the exit would never reach Prometheus (the report would then
  disagree with it). So at least one scrape serves them; ``linger`` (the worker's own
  ``metrics.linger_seconds``) leaves time for a second scraper (an HA pair) or a slow one.
- Only a refused connection means exited; a slow or odd answer keeps the last figures and
  the worker is asked again (its counters then go on, higher). Once exited, its port is not
  asked again: another process may get it, and figures naming another shard are refused.
- A relaunched index (``add``) starts a new process from 0: a counter reset, which
  ``rate()`` handles, as for any restarted pod.

Without the drop, every exited worker of a long run stayed on the port for the run's life.
Plain asyncio streams for the GET (no second HTTP client in this folder); a worker that
never answered is warned about once per shard.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator

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


@dataclasses.dataclass
class _Shard:
    """What the relay holds for one shard's worker."""

    port: int | None
    families: list[Metric] | None = None  # its last figures (None: never answered)
    gone_at: float | None = None  # when it was found exited (clock time)
    served_since: int = 0  # scrapes that served its figures since it went


class WorkerRelay(Collector):
    """Re-exports the ``/metrics`` of local workers, by shard."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        linger: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.linger = linger
        self.clock = clock
        self._shards: dict[int, _Shard] = {}
        self._warned: set[int] = set()

    @property
    def ports(self) -> dict[int, int]:
        """The ports asked at each refresh, by shard (exited workers' are not)."""
        return {i: s.port for i, s in self._shards.items() if s.port is not None}

    def add(self, shard: int, port: int) -> None:
        """Worker of ``shard`` now serves on ``port`` (a relaunch replaces the old one)."""
        old = self._shards.get(shard)
        self._shards[shard] = _Shard(port, old.families if old else None)

    def remove(self, shard: int) -> None:
        """``shard``'s worker exited: its last figures stay until served and lingered."""
        if (entry := self._shards.get(shard)) is not None:
            self._gone(shard, entry)

    def _gone(self, shard: int, entry: _Shard) -> None:
        entry.port = None
        if entry.gone_at is None:
            entry.gone_at = self.clock()
            entry.served_since = 0
            log.debug("shard %d's worker exited; its last figures stay a while", shard)

    async def refresh(self) -> None:
        """Read every live worker's figures; called before each scrape of the run's port."""
        self._forget_finished()
        shards = list(self.ports.items())
        answers = await asyncio.gather(
            *(fetch_metrics(self.host, port) for _, port in shards), return_exceptions=True
        )
        for (shard, port), answer in zip(shards, answers, strict=True):
            entry = self._shards.get(shard)
            if entry is None or entry.port != port:
                continue  # replaced meanwhile
            if isinstance(answer, ConnectionRefusedError) and entry.families is not None:
                self._gone(shard, entry)  # it answered before, nobody listens now: exited
                continue
            if isinstance(answer, BaseException):
                if entry.families is None and shard not in self._warned:
                    self._warned.add(shard)
                    log.warning(
                        "cannot read shard %d's metrics on port %d: %s", shard, port, answer
                    )
                continue
            try:
                families = list(text_string_to_metric_families(answer))
            except ValueError as exc:
                log.warning("shard %d served unreadable metrics: %s", shard, exc)
                continue
            if any(
                s.labels.get("shard", str(shard)) != str(shard) for f in families for s in f.samples
            ):
                self._gone(shard, entry)  # the port now serves another worker
                continue
            entry.families = families

    def _forget_finished(self) -> None:
        now = self.clock()
        for shard, entry in list(self._shards.items()):
            if (
                entry.gone_at is not None
                and (entry.served_since >= 1 or entry.families is None)
                and now - entry.gone_at >= self.linger
            ):
                del self._shards[shard]

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for shard in sorted(self._shards):
            entry = self._shards[shard]
            if entry.families is None:
                continue
            if entry.gone_at is not None:
                entry.served_since += 1
            for fam in entry.families:
                into = merged.get(fam.name)
                if into is None:
                    into = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type)
                into.samples.extend(fam.samples)
        yield from merged.values()
