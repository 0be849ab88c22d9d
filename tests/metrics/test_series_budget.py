"""A worker's series at worst stay within the budget the issue set (about 200).

The worst worker: every (outcome, route) pair and failure reason (pre-set anyway), every
endpoint a worker calls answering with every code class and retried for every cause, every
S3 fallback cause and every queue. The count is what a scrape shows, not a formula.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from ingest.items import FailureCode, Item, Outcome
from ingest.metrics import names
from ingest.metrics.requests import RequestStats, code_class
from ingest.metrics.worker import WorkerCollector
from ingest.s3.lean import CAUSES
from ingest.worker.accounting import Accounting
from ingest.worker.pacing import Limiter

# What a worker calls (ingest/worker: hash check, the three upload routes, the session's
# results) and one source read (S3 or a folder, never both).
WORKER_ENDPOINTS = (
    "/uploads/check-duplicates",
    "/user-files/upload/stream-batch",
    "/user-files/upload/stream",
    "/uploads/request-presigned-url",
    "presigned:PUT",
    "/uploads/confirm",
    "/uploads/sessions/{id}/results",
    names.S3_GET,
)
STATUSES = ("200", "201", "204", "302", "400", "404", "413", "429", "500", "503", "error")


def scrape(collector: WorkerCollector) -> dict[str, int]:
    """Series per family name (a histogram's parts under its own name)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    counts: dict[str, int] = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


def worst_worker() -> WorkerCollector:
    acct = Accounting(100, 10_000)
    for i, (outcome, route) in enumerate(names.OUTCOME_ROUTES):
        t = acct.open(i, Item(f"k{i}.jpg", 10))
        t.route = None if route == "none" else route
        failed = outcome == Outcome.FAILED.value
        t.finish(Outcome(outcome), reason="x", code=FailureCode.REJECTED if failed else None)
        acct.close(t)
    stats = RequestStats()
    for endpoint in WORKER_ENDPOINTS:
        for status in STATUSES:  # every class, several statuses each: one series a class
            stats.request_done(endpoint, status, 0.2)
        for cause in names.RETRY_CAUSES:
            stats.retrying(endpoint, cause)
    return WorkerCollector(
        acct,
        run_id="r",
        shard=0,
        version="v",
        requests=stats,
        pace=Limiter(10.0),
        queues=lambda: {"dedup": 1, "batcher": 1, "singles": 1},
        s3_fallbacks=lambda: dict.fromkeys(CAUSES, 1),
    )


def test_a_worker_at_worst_stays_within_the_series_budget() -> None:
    counts = scrape(worst_worker())
    total = sum(counts.values())
    assert total <= names.SERIES_BUDGET, counts
    # what makes it up: the one per-request-shape part is bounded by the endpoints
    classes = {code_class(s) for s in STATUSES}
    assert classes == set(names.CODE_CLASSES)
    assert counts["aion_ingest_http_requests_total"] == len(WORKER_ENDPOINTS) * len(classes)
    per_endpoint = len(names.DURATION_BUCKETS) + 1
    assert counts["aion_ingest_http_request_duration_seconds_bucket"] == (
        len(WORKER_ENDPOINTS) * per_endpoint
    )
    assert counts["aion_ingest_retries_total"] == len(names.RETRY_CAUSES)
    assert counts["aion_ingest_objects_total"] == len(names.OUTCOME_ROUTES)
    assert counts["aion_ingest_object_failures_total"] == len(names.FAILURE_REASONS)


def test_an_unforeseen_outcome_route_pair_is_still_exported() -> None:
    acct = Accounting(1, 10)
    t = acct.open(0, Item("k.jpg", 10))
    t.route = "batch"
    t.finish(Outcome.SKIPPED_FILTERED, reason="x")
    acct.close(t)
    counts = scrape(WorkerCollector(acct, run_id="r", shard=0, version="v"))
    assert counts["aion_ingest_objects_total"] == len(names.OUTCOME_ROUTES) + 1
    text = generate_latest(_registry(acct)).decode()
    labels = 'outcome="skipped_filtered",route="batch",run_id="r",shard="0"'
    assert f"aion_ingest_objects_total{{{labels}}} 1.0" in text


def _registry(acct: Accounting) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(acct, run_id="r", shard=0, version="v"))
    return registry


def test_code_classes() -> None:
    assert [code_class(c) for c in ("200", "299", "301", "404", "429", "500", "error")] == [
        "2xx",
        "2xx",
        "3xx",
        "4xx",
        "429",
        "5xx",
        "error",
    ]
    assert code_class("42") == code_class("600") == code_class("abc") == "error"
