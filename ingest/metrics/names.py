"""The exported metric names, their labels and label values: a public interface.

Keep these names; README.md documents them, the chart's alerts and the Grafana dashboard
query them, and tests check that every query names only what is listed here (or what a
recording rule records).
"""

from __future__ import annotations

from ingest.items import FailureCode, Outcome

PREFIX = "aion_ingest_"

# aion_ingest_object_failures_total{reason}: a failed object's FailureCode, the report's
# ``code`` (set where the failure happens: ingest/worker/failures.py, worker/uploads.py).
# Every code a worker can record; not_processed is the report's, for items no worker ended.
FAILURE_REASONS: tuple[str, ...] = tuple(
    c.value for c in FailureCode if c is not FailureCode.NOT_PROCESSED
)

# --- worker: served on /metrics while it works --------------------------------------------
OBJECTS = PREFIX + "objects"  # counter (exported as _total)
BYTES = PREFIX + "bytes"  # counter
OBJECT_FAILURES = PREFIX + "object_failures"  # counter
HTTP_DURATION = PREFIX + "http_request_duration_seconds"  # histogram
HTTP_REQUESTS = PREFIX + "http_requests"  # counter
RETRIES = PREFIX + "retries"  # counter
RATE_LIMITED = PREFIX + "rate_limited"  # counter
PACING = PREFIX + "pacing_requests_per_second"  # gauge
IN_FLIGHT_OBJECTS = PREFIX + "in_flight_objects"  # gauge
IN_FLIGHT_BYTES = PREFIX + "in_flight_bytes"  # gauge
QUEUE_ITEMS = PREFIX + "queue_items"  # gauge
SHARD_PLANNED = PREFIX + "shard_objects_planned"  # gauge
SHARD_DONE = PREFIX + "shard_objects_done"  # gauge
LAST_PROGRESS = PREFIX + "last_progress_timestamp_seconds"  # gauge
S3_FALLBACKS = PREFIX + "s3_fallbacks"  # counter
BUILD_INFO = PREFIX + "build_info"  # gauge, always 1

# --- run: served by the orchestration for the whole run -----------------------------------
RUN_PHASE = PREFIX + "run_phase"  # gauge, 1 for the current phase
RUN_OBJECTS_PLANNED = PREFIX + "run_objects_planned"
RUN_OBJECTS_DONE = PREFIX + "run_objects_done"
RUN_BYTES_PLANNED = PREFIX + "run_bytes_planned"
RUN_BYTES_DONE = PREFIX + "run_bytes_done"
RUN_SHARDS = PREFIX + "run_shards"  # gauge by state
RUN_ETA = PREFIX + "run_eta_seconds"
RUN_FORECAST = PREFIX + "run_forecast_seconds"  # the plan's predicted duration
QUOTA_AVAILABLE = PREFIX + "quota_available_files"

# --- pushed to a Pushgateway once, at the end of a run -------------------------------------
RUN_LAST_SUCCESS = PREFIX + "run_last_success_timestamp_seconds"
RUN_EXIT_CODE = PREFIX + "run_exit_code"
RUN_DURATION = PREFIX + "run_duration_seconds"
RUN_OBJECTS = PREFIX + "run_objects"  # gauge by outcome

# --- labels: each label set named once -----------------------------------------------------
SERIES_LABELS: tuple[str, ...] = ("run_id", "shard")  # on every worker series
RUN_LABELS: tuple[str, ...] = ("run_id",)  # on every run series
OUTCOME_ROUTE: tuple[str, ...] = ("outcome", "route")  # objects and bytes

# --- label values ----------------------------------------------------------------------
OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
ROUTES: tuple[str, ...] = ("batch", "stream", "presigned", "none")  # none: never sent
# The (outcome, route) pairs a worker can record, pre-set to 0 so rate() has a start: never
# uploaded without a route; skipped as unsupported or filtered before anything is sent; a
# duplicate found by the hash check (none) or named so by an upload's answer. Another pair,
# should one occur, is exported from its first count (13 pairs instead of 20 per counter).
OUTCOME_ROUTES: tuple[tuple[str, str], ...] = (
    *((Outcome.UPLOADED.value, r) for r in ROUTES if r != "none"),
    *((Outcome.SKIPPED_DUPLICATE.value, r) for r in ROUTES),
    (Outcome.SKIPPED_UNSUPPORTED.value, "none"),
    (Outcome.SKIPPED_FILTERED.value, "none"),
    *((Outcome.FAILED.value, r) for r in ROUTES),
)
# aion_ingest_http_requests_total{code}: the status's class, 429 apart (the 429-storm alert
# and the 429 ratio read it), or error (no answer: timeout, connection).
CODE_CLASSES: tuple[str, ...] = ("2xx", "3xx", "4xx", "429", "5xx", "error")
RETRY_CAUSES: tuple[str, ...] = ("429", "5xx", "timeout", "connection")
PHASES: tuple[str, ...] = ("planning", "uploading", "reporting", "done")
SHARD_STATES: tuple[str, ...] = ("pending", "running", "complete", "failed")
S3_GET = "s3:GetObject"  # the endpoint label of a source read (file:read for a folder)

# Latency buckets (seconds), by endpoint only (codes are counted apart, in HTTP_REQUESTS):
# 11 series per endpoint, from a fast stream-batch answer to a large presigned PUT.
DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60)

# A worker's series at worst (tests/metrics/test_series_budget.py builds that worker and
# counts): the issue asks for about 200.
SERIES_BUDGET = 200

_COUNTERS = (OBJECTS, BYTES, OBJECT_FAILURES, HTTP_REQUESTS, RETRIES, RATE_LIMITED, S3_FALLBACKS)
_HISTOGRAMS = (HTTP_DURATION,)
_GAUGES = (
    *(PACING, IN_FLIGHT_OBJECTS, IN_FLIGHT_BYTES, QUEUE_ITEMS, SHARD_PLANNED, SHARD_DONE),
    *(LAST_PROGRESS, BUILD_INFO),
    *(RUN_PHASE, RUN_OBJECTS_PLANNED, RUN_OBJECTS_DONE, RUN_BYTES_PLANNED, RUN_BYTES_DONE),
    *(RUN_SHARDS, RUN_ETA, RUN_FORECAST, QUOTA_AVAILABLE),
    *(RUN_LAST_SUCCESS, RUN_EXIT_CODE, RUN_DURATION, RUN_OBJECTS),
)
EXPORTED: frozenset[str] = frozenset(
    {
        *(name + "_total" for name in _COUNTERS),
        *(name + part for name in _HISTOGRAMS for part in ("_bucket", "_sum", "_count")),
        *_GAUGES,
    }
)
"""Every series name a scrape or the Pushgateway may show (histograms by their parts)."""
