"""The end-of-run push to a Pushgateway: the batch-job pattern Prometheus documents.

One group per job and release (grouping key ``{job, release}``), never per pod or shard:
each run replaces its release's figures. The push uses POST (``pushadd``), which replaces
only the metrics it sends, so a failed run leaves the last success's timestamp in place
and "no successful run for 26 h" keeps counting from it.

A Pushgateway that is down, slow or refusing never fails the run: one warning, and the
run's own exit code stands.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import urllib.parse
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from ingest.metrics import names as n
from ingest.settings import MetricsSettings

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a finished run pushes."""

    run_id: str
    exit_code: int
    duration_seconds: float
    objects_by_outcome: Mapping[str, int]
    finished_at: float | None = None  # Unix time; now when None


def result_registry(result: RunResult) -> CollectorRegistry:
    """The pushed series of ``result`` (``run_id`` as a label on each)."""
    registry = CollectorRegistry(auto_describe=True)
    labels = list(n.RUN_LABELS)

    def gauge(name: str, doc: str, *extra: str) -> Gauge:
        return Gauge(name, doc, [*labels, *extra], registry=registry)

    run = result.run_id
    if result.exit_code == 0:
        finished = result.finished_at if result.finished_at is not None else time.time()
        gauge(n.RUN_LAST_SUCCESS, "When the last successful run ended (Unix time).").labels(
            run
        ).set(finished)
    gauge(n.RUN_EXIT_CODE, "Exit code of the last run (0: success).").labels(run).set(
        result.exit_code
    )
    gauge(n.RUN_DURATION, "Duration of the last run.").labels(run).set(result.duration_seconds)
    objects = gauge(n.RUN_OBJECTS, "Objects of the last run by outcome.", "outcome")
    for outcome in n.OUTCOMES:
        objects.labels(run, outcome).set(result.objects_by_outcome.get(outcome, 0))
    return registry


def _shown(url: str) -> str:
    """The gateway's URL without user:password, for the log."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return "(an unreadable URL)"
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc, query="").geturl()


def push_run_result(settings: MetricsSettings, result: RunResult) -> bool:
    """Push ``result`` when a Pushgateway is configured; True when it was pushed.

    Blocking (at most ``settings.push_timeout`` seconds); see :func:`push_run_result_async`.
    """
    url = settings.pushgateway_url
    if not url:
        return False
    try:
        pushadd_to_gateway(
            url,
            job=settings.job,
            registry=result_registry(result),
            grouping_key={"release": settings.release},
            timeout=settings.push_timeout,
        )
    except Exception as exc:  # any failure: the run's outcome stands
        log.warning(
            "could not push the run's metrics to the Pushgateway %s (%s); the run goes on",
            _shown(url),
            type(exc).__name__ + (f": {exc}" if "://" not in str(exc) else ""),
        )
        return False
    log.info("pushed the run's metrics to %s", _shown(url))
    return True


async def push_run_result_async(settings: MetricsSettings, result: RunResult) -> bool:
    """:func:`push_run_result` in a thread, for the orchestration's event loop."""
    return await asyncio.to_thread(push_run_result, settings, result)
