"""The collector of one worker: everything is read at scrape time, nothing is counted twice.

Objects and bytes by outcome and route, failures by reason, in-flight work and the shard's
progress come from the worker's ``Accounting`` (the same records the
results and the report are made of); the pacing rate and 429s from the limiter; queue
depths from the pipeline; latency and retries from :class:`RequestStats`. Every series
carries ``run_id`` and ``shard`` labels, so one Prometheus query can sum a run or pick a
shard whatever the scrape setup (PodMonitor, a static config, one local port).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ingest.items import Outcome
from ingest.metrics import names as n
from ingest.metrics.requests import RequestStats

log = logging.getLogger(__name__)

# What the collector reads, as protocols: ingest.worker's Accounting and Limiter fit them.
# The worker serves this collector, so metrics/ sits below worker/ and imports nothing of it.


class _Clock(Protocol):
    def monotonic(self) -> float: ...


class _Transfer(Protocol):
    @property
    def bytes_sent(self) -> int: ...


class Books(Protocol):
    """The worker's accounting: counts by outcome, route and reason, open transfers."""

    @property
    def clock(self) -> _Clock: ...
    @property
    def total_objects(self) -> int: ...
    @property
    def resumed_objects(self) -> int: ...
    @property
    def objects(self) -> Mapping[Outcome, int]: ...
    @property
    def by_route(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def bytes_by_route(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def failures(self) -> Mapping[str, int]: ...
    @property
    def in_flight(self) -> Mapping[int, _Transfer]: ...
    @property
    def last_progress_at(self) -> float | None: ...


class _PacingStats(Protocol):
    @property
    def throttled(self) -> int: ...


class Pace(Protocol):
    """The worker's limiter: its current rate and the 429s it heard."""

    @property
    def rate(self) -> float: ...
    @property
    def stats(self) -> _PacingStats: ...


def _no_fallbacks() -> Mapping[str, int]:
    return {}


def _no_queues() -> Mapping[str, int]:
    return {}


class WorkerCollector(Collector):
    """``aion_ingest_*`` of one worker (shard ``shard`` of run ``run_id``)."""

    def __init__(
        self,
        accounting: Books,
        *,
        run_id: str,
        shard: int,
        version: str,
        requests: RequestStats | None = None,
        pace: Pace | None = None,
        queues: Callable[[], Mapping[str, int]] = _no_queues,
        s3_fallbacks: Callable[[], Mapping[str, int]] = _no_fallbacks,
    ) -> None:
        self.accounting = accounting
        self.requests = requests or RequestStats()
        self.pace = pace
        self.queues = queues
        self.s3_fallbacks = s3_fallbacks
        self.version = version
        self.labels = dict(zip(n.SERIES_LABELS, (run_id, str(shard)), strict=True))
        clock = accounting.clock
        # Accounting keeps monotonic time; this turns it into a Unix timestamp.
        self._wall_offset = time.time() - clock.monotonic()
        self._started = clock.monotonic()
        self._failed_once = False

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except Exception:  # a scrape must not break the worker, nor spam its log
            if not self._failed_once:
                self._failed_once = True
                log.warning("metrics collection failed; serving what it can", exc_info=True)

    def _counter(self, name: str, doc: str, *labels: str) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=[*self.labels, *labels])

    def _gauge(self, name: str, doc: str, *labels: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=[*self.labels, *labels])

    def _single(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        gauge = self._gauge(name, doc)
        gauge.add_metric(list(self.labels.values()), value)
        return gauge

    def _collect(self) -> Iterator[Metric]:
        base = list(self.labels.values())
        acct = self.accounting
        # dict() copies in one step: the counters may change between two scrapes' lines
        # but one scrape's numbers belong together.
        by_route = dict(acct.by_route)
        bytes_by_route = dict(acct.bytes_by_route)
        objects = self._counter(n.OBJECTS, "Objects with an outcome.", *n.OUTCOME_ROUTE)
        nbytes = self._counter(n.BYTES, "Bytes of objects with an outcome.", *n.OUTCOME_ROUTE)
        for pair in (*n.OUTCOME_ROUTES, *sorted(by_route.keys() - set(n.OUTCOME_ROUTES))):
            objects.add_metric([*base, *pair], by_route.get(pair, 0))
            nbytes.add_metric([*base, *pair], bytes_by_route.get(pair, 0))
        yield objects
        yield nbytes

        failures = dict(acct.failures)
        fam = self._counter(n.OBJECT_FAILURES, "Failed objects by the report's code.", "reason")
        for reason in n.FAILURE_REASONS:
            fam.add_metric([*base, reason], failures.get(reason, 0))
        yield fam

        hist = HistogramMetricFamily(
            n.HTTP_DURATION,
            "Duration of HTTP requests (API, presigned PUT, source reads).",
            labels=[*self.labels, "endpoint"],
        )
        for endpoint, series in list(self.requests.latency.items()):
            hist.add_metric([*base, endpoint], self.requests.cumulative(series), series.sum)
        yield hist

        fam = self._counter(n.HTTP_REQUESTS, "HTTP requests by code class.", "endpoint", "code")
        for (endpoint, code), count in list(self.requests.requests.items()):
            fam.add_metric([*base, endpoint, code], count)
        yield fam

        fam = self._counter(n.RETRIES, "Requests tried again, by cause.", "cause")
        for cause, count in list(self.requests.retries.items()):
            fam.add_metric([*base, cause], count)
        yield fam

        rate_limited = self._counter(n.RATE_LIMITED, "HTTP 429 answers from the API.")
        rate_limited.add_metric(base, self.pace.stats.throttled if self.pace else 0)
        yield rate_limited
        yield self._single(
            n.PACING, "The limiter's current request rate.", self.pace.rate if self.pace else 0.0
        )

        in_flight = list(acct.in_flight.values())
        yield self._single(n.IN_FLIGHT_OBJECTS, "Objects being worked on.", len(in_flight))
        yield self._single(
            n.IN_FLIGHT_BYTES,
            "Bytes sent so far by objects being worked on.",
            sum(t.bytes_sent for t in in_flight),
        )

        queues = self._gauge(n.QUEUE_ITEMS, "Items waiting in a pipeline queue.", "queue")
        for queue, depth in sorted(self.queues().items()):
            queues.add_metric([*base, queue], depth)
        yield queues

        done = sum(acct.objects.values()) + acct.resumed_objects
        yield self._single(n.SHARD_PLANNED, "Objects in this worker's shard.", acct.total_objects)
        yield self._single(
            n.SHARD_DONE, "Objects of the shard with an outcome (resumed too).", done
        )
        last = acct.last_progress_at if acct.last_progress_at is not None else self._started
        yield self._single(
            n.LAST_PROGRESS,
            "When the last object got its outcome (Unix time).",
            last + self._wall_offset,
        )

        fallbacks = self._counter(n.S3_FALLBACKS, "S3 reads that fell back to botocore.", "cause")
        for cause, count in sorted(self.s3_fallbacks().items()):
            fallbacks.add_metric([*base, cause], count)
        yield fallbacks

        info = self._gauge(n.BUILD_INFO, "Always 1; the version of aion-ingest.", "version")
        info.add_metric([*base, self.version], 1)
        yield info
