"""The API client's observer: request latency by endpoint and code, retries by cause.

Plain counters updated on the event loop (no locks; ``/metrics`` is served from the same
loop), read by :class:`~ingest.metrics.worker.WorkerCollector` at scrape time. Endpoints
arrive as templates (``ingest.api.observe``), codes as an HTTP status or ``error``, so
every label value comes from a small set.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses

from ingest.metrics.names import DURATION_BUCKETS


@dataclasses.dataclass(slots=True)
class Latency:
    """One histogram series: counts per bucket (not cumulative), sum, count."""

    buckets: list[int]
    sum: float = 0.0
    count: int = 0


class RequestStats:
    """Implements ``ingest.api.observe.RequestObserver``; also times source reads."""

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.latency: dict[tuple[str, str], Latency] = {}
        self.retries: collections.Counter[tuple[str, str]] = collections.Counter()

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        key = (endpoint, code)
        series = self.latency.get(key)
        if series is None:
            series = self.latency[key] = Latency([0] * (len(self.bounds) + 1))
        series.buckets[bisect.bisect_left(self.bounds, seconds)] += 1
        series.sum += seconds
        series.count += 1

    def retrying(self, endpoint: str, cause: str) -> None:
        self.retries[(endpoint, cause)] += 1

    def cumulative(self, series: Latency) -> list[tuple[str, float]]:
        """Prometheus buckets: (upper bound, observations at or below it), ``+Inf`` last."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), series.buckets, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out
