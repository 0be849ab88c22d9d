"""How long a run will take, and what it leaves of the month's quota: arithmetic only.

On the real API the bound of a run is the key's request budget, not this machine: R
requests a minute for the whole key (10 / 30 / 100 / 500 by tier), shared by all workers
(``ingest/worker/budget.py``: live workers split it, so the parallelism does not change the
total rate, only how soon the tail ends). So the duration is the run's requests over R,
and the requests follow from the objects per route and the batch-results mode:

- batch route (small files): one request per stream-batch of ``files_per_batch``; for the
  image ids, mode ``list`` adds one per 100 files (GET /user-files pages), ``fetch`` one
  per batch (session results), ``accept`` none;
- stream route (one file a request, up to 100 MB): one request per file;
- presigned route (> 100 MB): request-presigned-url and confirm, two per file (the PUT
  goes to storage, not to the API's budget);
- plus the plan's quota check.

A bandwidth cap (``worker.bytes_per_second``, per worker) bounds it from the other side:
bytes / (cap x parallelism). The larger of the two is the forecast. Not modelled: a
source slower than the budget, items with their own title (stream route, one request
each), tag sets that split batches, retries; the README's bench compares the forecast
with measured runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from ingest.settings import Settings, parse_duration
from ingest.state.records import RunPlan

TIER_REQUESTS_PER_MINUTE = {"FREE": 10, "STARTER": 30, "PROFESSIONAL": 100, "ENTERPRISE": 500}
TIER_FILES_PER_BATCH = {"FREE": 10, "STARTER": 20, "PROFESSIONAL": 20, "ENTERPRISE": 50}
LIST_PAGE = 100  # GET /user-files files per request
INLINE_RESULTS_MAX = 5  # batches up to this size carry their per-file results
PRESIGNED_REQUESTS = 2
_MIB = 1024**2


@dataclasses.dataclass(frozen=True)
class Workload:
    """The objects of a run by route."""

    batch_files: int
    stream_files: int = 0
    presigned_files: int = 0
    bytes: int = 0

    @property
    def files(self) -> int:
        return self.batch_files + self.stream_files + self.presigned_files


@dataclasses.dataclass(frozen=True)
class Pace:
    """What the run may spend: the key's budget and the workers."""

    requests_per_minute: float
    files_per_batch: int
    parallelism: int = 1
    batch_results: str = "list"  # worker.batch_results' default
    bytes_per_second: float | None = None  # per worker


@dataclasses.dataclass(frozen=True)
class Forecast:
    requests: int
    seconds: float
    files_per_minute: float
    quota_after: int | None  # None: unlimited or not checked
    warnings: tuple[str, ...] = ()

    def line(self) -> str:
        quota = "" if self.quota_after is None else f"; {self.quota_after:,} uploads left after"
        return (
            f"{duration(self.seconds)} ({self.requests:,} requests, "
            f"{self.files_per_minute:,.0f} files/min){quota}"
        )


def workload_from_histogram(
    histogram: Mapping[str, int], total_bytes: int, batch_max_file_bytes: int = _MIB
) -> Workload:
    """Objects per route from the plan's size histogram (its bounds: 64 KiB, 1 MiB,
    10 MiB, 100 MiB, 1 GiB). Files up to ``batch_max_file_bytes`` go by batch: exact at
    64 KiB or 1 MiB; otherwise the buckets at or below it count as batch."""
    below = {"<64KiB": 64 * 1024, "64KiB-1MiB": _MIB, "1-10MiB": 10 * _MIB, "10-100MiB": 100 * _MIB}
    batch = sum(n for k, n in histogram.items() if k in below and below[k] <= batch_max_file_bytes)
    stream = sum(n for k, n in histogram.items() if k in below) - batch
    presigned = sum(n for k, n in histogram.items() if k not in below)
    return Workload(batch, stream, presigned, total_bytes)


def requests_for(w: Workload, files_per_batch: int, batch_results: str) -> int:
    """Requests the API's budget pays for ``w``."""
    batches = math.ceil(w.batch_files / files_per_batch) if w.batch_files else 0
    ids = 0
    if files_per_batch > INLINE_RESULTS_MAX:
        if batch_results == "list":
            ids = math.ceil(w.batch_files / LIST_PAGE) if w.batch_files else 0
        elif batch_results == "fetch":
            ids = batches
    return 1 + batches + ids + w.stream_files + PRESIGNED_REQUESTS * w.presigned_files


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def forecast(
    w: Workload,
    pace: Pace,
    *,
    quota_available: int | None = None,
    deadline_seconds: float | None = None,
) -> Forecast:
    """The run's duration and what it leaves; warnings say what would make it fit."""
    requests = requests_for(w, pace.files_per_batch, pace.batch_results)
    seconds = requests / pace.requests_per_minute * 60
    if pace.bytes_per_second:
        seconds = max(seconds, w.bytes / (pace.bytes_per_second * pace.parallelism))
    per_min = w.files / seconds * 60 if seconds > 0 else 0.0
    warnings: list[str] = []
    quota_after = None if quota_available is None else quota_available - w.files
    if quota_after is not None and quota_after < 0:
        warnings.append(
            f"the monthly quota will not hold: {w.files:,} files, {quota_available:,} uploads "
            f"left; fits with a higher tier, another key, or {quota_available:,} objects at "
            "most (filters, or a manifest of part of the source)"
        )
    if deadline_seconds is not None and seconds > deadline_seconds:
        warnings.append(_deadline_advice(w, pace, seconds, deadline_seconds))
    return Forecast(requests, seconds, per_min, quota_after, tuple(warnings))


def _deadline_advice(w: Workload, pace: Pace, seconds: float, deadline: float) -> str:
    """What would make the run fit: a tier whose budget does, keys, fewer objects."""
    fits = []
    for tier, rpm in TIER_REQUESTS_PER_MINUTE.items():
        if rpm <= pace.requests_per_minute:
            continue
        t = requests_for(w, TIER_FILES_PER_BATCH[tier], pace.batch_results) / rpm * 60
        if t <= deadline:
            fits.append(f"tier {tier} ({duration(t)})")
            break
    keys = math.ceil(seconds / deadline)
    fits.append(f"{keys} keys of this tier, one per part of the source")
    fits.append(f"about {int(w.files * deadline / seconds):,} objects")
    return (
        f"the run will not finish by the deadline: {duration(seconds)} predicted, "
        f"{duration(deadline)} allowed; fits with " + ", or ".join(fits)
    )


def plan_forecast(plan: RunPlan, settings: Settings, parallelism: int | None = None) -> Forecast:
    """The forecast of a written plan under these settings (the plan's quota answer, the
    tier's budget, the workers' mode and caps, ``plan.deadline``)."""
    w = settings.worker
    workload = workload_from_histogram(plan.histogram, plan.bytes, w.small_file_max)
    pace = Pace(
        requests_per_minute=settings.requests_per_minute(),
        files_per_batch=settings.files_per_batch(),
        parallelism=parallelism or w.parallel_workers,
        batch_results=w.batch_results,
        bytes_per_second=w.bytes_per_second,
    )
    available = (plan.quota or {}).get("available")
    deadline = settings.plan.deadline
    return forecast(
        workload,
        pace,
        quota_available=available,
        deadline_seconds=parse_duration(deadline) if deadline else None,
    )


def forecast_lines(plan: RunPlan, settings: Settings, parallelism: int | None = None) -> list[str]:
    """The plan summary's lines: the forecast, then a line per warning."""
    if plan.items == 0:
        return []
    f = plan_forecast(plan, settings, parallelism)
    return [f"  forecast  {f.line()}"] + [f"  WARNING   {w}" for w in f.warnings]
