"""The collectors read the worker's books and the run's progress at scrape time."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingest.api.observe import path_template, retry_cause
from ingest.errors import RateLimited, RetryableError
from ingest.items import FailureCode, Item, Outcome
from ingest.metrics import names
from ingest.metrics.requests import RequestStats
from ingest.metrics.run import RunCollector, RunSnapshot
from ingest.metrics.server import MetricsServer, serve_metrics
from ingest.metrics.worker import WorkerCollector
from ingest.settings import MetricsSettings
from ingest.worker.accounting import Accounting
from ingest.worker.pacing import Limiter
from tests.worker.fakeclock import FakeClock


def samples(*collectors: object) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found[(name, frozenset(labels.items()))]


def test_worker_collector_reads_the_accounting_every_combination_preset() -> None:
    clock = FakeClock()
    acct = Accounting(5, 500, clock=clock)
    acct.resumed(1, 100)
    t = acct.open(1, Item("a.jpg", 100))
    t.route = "batch"
    t.finish(Outcome.UPLOADED)
    acct.close(t)
    t = acct.open(2, Item("b.jpg", 200))
    t.route = "stream"
    t.finish(Outcome.FAILED, reason="too big", http_status=413, code=FailureCode.TOO_LARGE)
    acct.close(t)
    acct.record(3, Item("c.exe", 7), Outcome.SKIPPED_UNSUPPORTED)
    open_t = acct.open(4, Item("d.jpg", 100))
    open_t.bytes_sent = 40
    limiter = Limiter(2.0, clock=clock)
    limiter.throttled(None)
    requests = RequestStats()
    requests.request_done("/user-files/upload/stream", "200", 0.07)
    requests.request_done("/user-files/upload/stream", "200", 0.3)
    requests.request_done("/user-files/upload/stream", "429", 0.01)
    requests.retrying("/user-files/upload/stream", "429")
    collector = WorkerCollector(
        acct,
        run_id="r1",
        shard=3,
        version="9.9",
        requests=requests,
        pace=limiter,
        queues=lambda: {"dedup": 2, "batcher": 5},
    )
    found = samples(collector)
    base = {"run_id": "r1", "shard": "3"}
    objects = {k: v for k, v in found.items() if k[0] == "aion_ingest_objects_total"}
    assert {(dict(k[1])["outcome"], dict(k[1])["route"]) for k in objects} == set(
        names.OUTCOME_ROUTES
    )
    assert value(found, "aion_ingest_objects_total", **base, outcome="uploaded", route="batch") == 1
    assert value(found, "aion_ingest_objects_total", **base, outcome="failed", route="stream") == 1
    assert (
        value(
            found, "aion_ingest_objects_total", **base, outcome="skipped_unsupported", route="none"
        )
        == 1
    )
    assert value(found, "aion_ingest_bytes_total", **base, outcome="failed", route="stream") == 200
    assert sum(objects.values()) == 3  # this process's outcomes; resumed ones are not recounted
    failures = {k: v for k, v in found.items() if k[0] == "aion_ingest_object_failures_total"}
    assert len(failures) == len(names.FAILURE_REASONS)
    assert value(found, "aion_ingest_object_failures_total", **base, reason="too_large") == 1
    assert value(found, "aion_ingest_shard_objects_planned", **base) == 5
    assert value(found, "aion_ingest_shard_objects_done", **base) == 4
    assert value(found, "aion_ingest_in_flight_objects", **base) == 1
    assert value(found, "aion_ingest_in_flight_bytes", **base) == 40
    assert value(found, "aion_ingest_queue_items", **base, queue="batcher") == 5
    assert value(found, "aion_ingest_rate_limited_total", **base) == 1
    assert value(found, "aion_ingest_pacing_requests_per_second", **base) == limiter.rate < 2.0
    assert value(found, "aion_ingest_build_info", **base, version="9.9") == 1
    ep = {"endpoint": "/user-files/upload/stream"}
    assert value(found, "aion_ingest_retries_total", **base, cause="429") == 1
    assert value(found, "aion_ingest_http_requests_total", **base, **ep, code="2xx") == 2
    assert value(found, "aion_ingest_http_requests_total", **base, **ep, code="429") == 1
    h = "aion_ingest_http_request_duration_seconds"
    assert value(found, h + "_count", **base, **ep) == 3
    assert value(found, h + "_bucket", **base, **ep, le="0.1") == 2
    assert value(found, h + "_bucket", **base, **ep, le="+Inf") == 3
    assert value(found, h + "_sum", **base, **ep) == pytest.approx(0.38)
    assert {k[0] for k in found} <= names.EXPORTED | {"aion_ingest_objects_created"}


def test_last_progress_is_the_wall_time_of_the_last_outcome() -> None:
    clock = FakeClock()
    acct = Accounting(2, 0, clock=clock)
    collector = WorkerCollector(acct, run_id="r", shard=0, version="v")
    first = value(
        samples(collector), "aion_ingest_last_progress_timestamp_seconds", run_id="r", shard="0"
    )
    clock.now += 100
    acct.record(0, Item("a.jpg", 1), Outcome.UPLOADED)
    clock.now += 50  # no outcome meanwhile: the timestamp does not move
    later = value(
        samples(collector), "aion_ingest_last_progress_timestamp_seconds", run_id="r", shard="0"
    )
    assert later - first == pytest.approx(100)


def test_a_failing_collector_logs_once_and_the_scrape_still_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("boom")

    collector = WorkerCollector(Accounting(1, 1), run_id="r", shard=0, version="v", queues=broken)
    with caplog.at_level(logging.WARNING):
        first = samples(collector)
        samples(collector)
    assert (
        "aion_ingest_shard_objects_planned",
        frozenset({("run_id", "r"), ("shard", "0")}),
    ) not in first
    assert (
        "aion_ingest_objects_total",
        frozenset({("run_id", "r"), ("shard", "0"), ("outcome", "uploaded"), ("route", "batch")}),
    ) in first
    assert sum("metrics collection failed" in r.message for r in caplog.records) == 1


def test_the_failure_reason_label_is_the_failure_code() -> None:
    """The label's values are the report's codes, every one preset: bounded, no free text."""
    acct = Accounting(3, 0, clock=FakeClock())
    for ordinal, code in enumerate((FailureCode.SOURCE_GONE, FailureCode.SOURCE_GONE)):
        t = acct.open(ordinal, Item(f"{ordinal}.jpg", 1))
        t.finish(Outcome.FAILED, reason=f"s3://b/{ordinal}.jpg is gone", code=code)
        acct.close(t)
    found = samples(WorkerCollector(acct, run_id="r", shard=0, version="v"))
    failures = {
        dict(labels)["reason"]: v
        for (name, labels), v in found.items()
        if name == "aion_ingest_object_failures_total"
    }
    assert set(failures) == {c.value for c in FailureCode} - {"not_processed"}
    assert failures["source_gone"] == 2
    assert sum(failures.values()) == 2


def test_endpoints_are_templates_and_retry_causes_are_four() -> None:
    assert path_template("/uploads/sessions/s-1/results") == "/uploads/sessions/{id}/results"
    assert path_template("/uploads/batch/b9/status") == "/uploads/batch/{id}/status"
    assert path_template("/uploads/status/img-3") == "/uploads/status/{id}"
    assert path_template("/user-files/upload/stream-batch") == "/user-files/upload/stream-batch"
    assert path_template("/uploads/check-duplicates") == "/uploads/check-duplicates"
    assert retry_cause(RateLimited("slow down", status=429)) == "429"
    assert retry_cause(RetryableError("server error", status=502)) == "5xx"
    assert retry_cause(RetryableError("timed out waiting for the answer at /x")) == "timeout"
    assert retry_cause(RetryableError("could not connect at /x")) == "connection"


def test_run_collector_exports_a_snapshot_and_nothing_before_a_plan() -> None:
    view: list[RunSnapshot | None] = [None]
    collector = RunCollector(lambda: view[0])
    assert samples(collector) == {}
    view[0] = RunSnapshot(
        run_id="r7",
        phase="uploading",
        objects_planned=1000,
        objects_done=250,
        bytes_planned=10_000,
        bytes_done=2_000,
        shard_states={"complete": 2, "running": 2, "pending": 4},
        eta_seconds=90.5,
        quota_available_files=5_000,
        forecast_seconds=600.0,
    )
    found = samples(collector)
    assert value(found, "aion_ingest_run_phase", run_id="r7", phase="uploading") == 1
    assert value(found, "aion_ingest_run_phase", run_id="r7", phase="planning") == 0
    assert value(found, "aion_ingest_run_objects_done", run_id="r7") == 250
    assert value(found, "aion_ingest_run_shards", run_id="r7", state="failed") == 0
    assert value(found, "aion_ingest_run_shards", run_id="r7", state="pending") == 4
    assert value(found, "aion_ingest_run_eta_seconds", run_id="r7") == 90.5
    assert value(found, "aion_ingest_run_forecast_seconds", run_id="r7") == 600.0
    assert value(found, "aion_ingest_quota_available_files", run_id="r7") == 5000
    assert {k[0] for k in found} <= names.EXPORTED


async def test_server_serves_metrics_and_a_taken_port_only_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    acct = Accounting(3, 30)
    collector = WorkerCollector(acct, run_id="r", shard=1, version="v")
    settings = MetricsSettings(port=0)
    async with serve_metrics(settings, collector) as server:
        assert server is not None and server.port
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{server.port}/metrics")
            assert r.status_code == 200
            assert 'aion_ingest_shard_objects_planned{run_id="r",shard="1"} 3.0' in r.text
            assert (await client.get(f"http://127.0.0.1:{server.port}/nope")).status_code == 404
        taken = server.port
        registry = CollectorRegistry()
        with caplog.at_level(logging.WARNING):
            second = MetricsServer(registry, "127.0.0.1", taken)
            assert await second.start() is False
        assert "going on without metrics" in caplog.text
    async with serve_metrics(MetricsSettings(), collector) as off:
        assert off is None  # no port: nothing served


async def test_a_scraper_that_hangs_up_does_not_disturb_the_server() -> None:
    async with serve_metrics(MetricsSettings(port=0), RunCollector(lambda: None)) as server:
        assert server is not None
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /metr")
        writer.close()
        await writer.wait_closed()
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{server.port}/metrics")).status_code == 200
