"""Run-level metrics: how far the whole run is, read from the orchestration's progress.

The orchestration owns one progress model (done and planned objects and bytes, rate, ETA,
shard states); this module only needs a read-only view of it, :class:`RunProgress`, so
the run's ``/metrics``, its progress lines and ``aion-ingest status`` show the same ETA.
:class:`RunSnapshot` is a plain implementation (tests, adapters).

Wiring (the orchestration)::

    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(lambda: progress_view))   # a RunProgress, or None
    async with MetricsServer(registry, settings.metrics.address, port): ...
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.metrics import names as n

log = logging.getLogger(__name__)


class RunProgress(Protocol):
    """What the run's collector reads; the orchestration's progress model provides it."""

    @property
    def run_id(self) -> str: ...

    @property
    def phase(self) -> str:
        """One of ``names.PHASES``: planning, uploading, reporting, done."""

    @property
    def objects_planned(self) -> int: ...

    @property
    def objects_done(self) -> int: ...

    @property
    def bytes_planned(self) -> int: ...

    @property
    def bytes_done(self) -> int: ...

    @property
    def shard_states(self) -> Mapping[str, int]:
        """Shards by state (``names.SHARD_STATES``: pending, running, complete, failed)."""

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the current rate; None when unknown (no rate yet)."""

    @property
    def quota_available_files(self) -> int | None:
        """Files the API key may still upload this month (quota-check); None if unknown."""

    @property
    def forecast_seconds(self) -> float | None:
        """The whole run's predicted duration (the plan's forecast); None if unknown."""


@dataclasses.dataclass(frozen=True)
class RunSnapshot:
    """A :class:`RunProgress` at one instant."""

    run_id: str
    phase: str
    objects_planned: int = 0
    objects_done: int = 0
    bytes_planned: int = 0
    bytes_done: int = 0
    shard_states: Mapping[str, int] = dataclasses.field(default_factory=dict)
    eta_seconds: float | None = None
    quota_available_files: int | None = None
    forecast_seconds: float | None = None


class RunCollector(Collector):
    """``aion_ingest_run_*`` and ``aion_ingest_quota_available_files`` of one run.

    ``progress`` is called at each scrape; None (no plan yet) exports nothing.
    """

    def __init__(self, progress: Callable[[], RunProgress | None]) -> None:
        self.progress = progress
        self._failed_once = False

    def collect(self) -> Iterator[Metric]:
        try:
            view = self.progress()
            if view is not None:
                yield from self._collect(view)
        except Exception:
            if not self._failed_once:
                self._failed_once = True
                log.warning("run metrics collection failed; serving what it can", exc_info=True)

    def _collect(self, p: RunProgress) -> Iterator[Metric]:
        run = [p.run_id]

        def gauge(name: str, doc: str, value: float, *labels: str) -> GaugeMetricFamily:
            fam = GaugeMetricFamily(name, doc, labels=[*n.RUN_LABELS, *labels])
            fam.add_metric(run, value)
            return fam

        fam = GaugeMetricFamily(
            n.RUN_PHASE, "1 for the run's current phase.", labels=[*n.RUN_LABELS, "phase"]
        )
        for phase in n.PHASES:
            fam.add_metric([*run, phase], 1.0 if phase == p.phase else 0.0)
        yield fam
        yield gauge(n.RUN_OBJECTS_PLANNED, "Objects planned for the run.", p.objects_planned)
        yield gauge(n.RUN_OBJECTS_DONE, "Objects of the run with an outcome.", p.objects_done)
        yield gauge(n.RUN_BYTES_PLANNED, "Bytes planned for the run.", p.bytes_planned)
        yield gauge(n.RUN_BYTES_DONE, "Bytes of objects with an outcome.", p.bytes_done)
        fam = GaugeMetricFamily(n.RUN_SHARDS, "Shards by state.", labels=[*n.RUN_LABELS, "state"])
        states = dict(p.shard_states)
        for state in (*n.SHARD_STATES, *sorted(set(states) - set(n.SHARD_STATES))):
            fam.add_metric([*run, state], states.get(state, 0))
        yield fam
        if p.eta_seconds is not None:
            yield gauge(n.RUN_ETA, "Seconds until the run ends at its current rate.", p.eta_seconds)
        if p.forecast_seconds is not None:
            yield gauge(
                n.RUN_FORECAST,
                "The run's predicted duration from its plan (objects per route, the tier's "
                "budget); compare with the objects done per second.",
                p.forecast_seconds,
            )
        if p.quota_available_files is not None:
            yield gauge(
                n.QUOTA_AVAILABLE, "Files the API key may still upload.", p.quota_available_files
            )
