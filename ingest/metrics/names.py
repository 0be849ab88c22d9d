"""The exported metric names, their labels and label values: a public interface.

Keep these names; README.md documents them, the chart's alerts and the Grafana dashboard
query them, and tests check that every query names only what is listed here (or what a
recording rule records).
"""

from __future__ import annotations

from ingest.items import Outcome

PREFIX = "aion_ingest_"

# aion_ingest_object_failures_total{reason}: a failed object's reason as one fixed word
# (ingest/worker/failures.py picks it).
FAILURE_REASONS: tuple[str, ...] = (
    "too_large",  # 413
    "unsupported_media",  # 415
    "invalid",  # 400, 422: the API refused the file's fields or content
    "refused",  # another 4xx for this file (a presigned URL expired, ...)
    "server_error",  # a 5xx on an item, retries spent
    "batch_rejection",  # named in a stream-batch's rejections, no status
    "source_changed",  # changed since planning (ETag or size differs)
    "source_missing",  # deleted since planning, archived, denied, outside the source
    "no_result",  # the API accepted the request but named no result for the file
    "other",
)

# --- worker: served on /metrics while it works --------------------------------------------
OBJECTS = PREFIX + "objects"  # counter (exported as _total)
BYTES = PREFIX + "bytes"  # counter
OBJECT_FAILURES = PREFIX + "object_failures"  # counter
HTTP_DURATION = PREFIX + "http_request_duration_seconds"  # histogram
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

# --- label values ----------------------------------------------------------------------
OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
ROUTES: tuple[str, ...] = ("batch", "stream", "presigned", "none")  # none: never sent
RETRY_CAUSES: tuple[str, ...] = ("429", "5xx", "timeout", "connection")
PHASES: tuple[str, ...] = ("planning", "uploading", "reporting", "done")
SHARD_STATES: tuple[str, ...] = ("pending", "running", "complete", "failed")
S3_GET = "s3:GetObject"  # the endpoint label of a source read (file:read for a folder)

# Latency buckets (seconds): few, to keep a worker's series under ~200 (12 per endpoint
# and code); from a fast stream-batch answer to a large presigned PUT.
DURATION_BUCKETS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)

EXPORTED: frozenset[str] = frozenset(
    {
        OBJECTS + "_total",
        BYTES + "_total",
        OBJECT_FAILURES + "_total",
        HTTP_DURATION + "_bucket",
        HTTP_DURATION + "_sum",
        HTTP_DURATION + "_count",
        RETRIES + "_total",
        RATE_LIMITED + "_total",
        PACING,
        IN_FLIGHT_OBJECTS,
        IN_FLIGHT_BYTES,
        QUEUE_ITEMS,
        SHARD_PLANNED,
        SHARD_DONE,
        LAST_PROGRESS,
        S3_FALLBACKS + "_total",
        BUILD_INFO,
        RUN_PHASE,
        RUN_OBJECTS_PLANNED,
        RUN_OBJECTS_DONE,
        RUN_BYTES_PLANNED,
        RUN_BYTES_DONE,
        RUN_SHARDS,
        RUN_ETA,
        RUN_FORECAST,
        QUOTA_AVAILABLE,
        RUN_LAST_SUCCESS,
        RUN_EXIT_CODE,
        RUN_DURATION,
        RUN_OBJECTS,
    }
)
"""Every series name a scrape or the Pushgateway may show (histograms by their parts)."""
