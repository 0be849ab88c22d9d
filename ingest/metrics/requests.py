"""The API client's observer: latency by endpoint, requests by endpoint and code class,
retries by cause.

Plain counters updated on the event loop (no locks; ``/metrics`` is served from the same
loop), read by :class:`~ingest.metrics.worker.WorkerCollector` at scrape time. Endpoints
arrive as templates (``ingest.api.observe``), codes as an HTTP status or ``error``, kept
as a class (``2xx``, ``429``, ...), so every label value comes from a small set.

Why the latency histogram has no ``code`` label: each (endpoint, code) pair would cost a
whole histogram (11 series) where the dashboard and the alerts only ask latency by endpoint
and counts by code; counts by code are one series each. Retries are by cause alone: by
endpoint they would repeat the requests' codes (a 429, 5xx or error answer is what is
retried).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses

from ingest.metrics.names import DURATION_BUCKETS


def code_class(code: str) -> str:
    """``200`` -> ``2xx``, ``429`` stays, ``error`` (or anything not a status) -> ``error``."""
    if code == "429":
        return code
    if len(code) == 3 and code.isdigit() and code[0] in "2345":
        return code[0] + "xx"
    return "error"


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
        self.latency: dict[str, Latency] = {}
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self.retries: collections.Counter[str] = collections.Counter()

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        self.requests[(endpoint, code_class(code))] += 1
        series = self.latency.get(endpoint)
        if series is None:
            series = self.latency[endpoint] = Latency([0] * (len(self.bounds) + 1))
        series.buckets[bisect.bisect_left(self.bounds, seconds)] += 1
        series.sum += seconds
        series.count += 1

    def retrying(self, endpoint: str, cause: str) -> None:
        self.retries[cause] += 1

    def cumulative(self, series: Latency) -> list[tuple[str, float]]:
        """Prometheus buckets: (upper bound, observations at or below it), ``+Inf`` last."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), series.buckets, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out
