"""One port for a local run: the relay re-exports its workers' series, even after they exit."""

from __future__ import annotations

import logging

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.items import Item, Outcome
from ingest.metrics.relay import WorkerRelay
from ingest.metrics.run import RunCollector, RunSnapshot
from ingest.metrics.server import serve_metrics
from ingest.metrics.worker import WorkerCollector
from ingest.settings import MetricsSettings
from ingest.worker.accounting import Accounting
from tests.fixtures.ports import free_port


async def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert r.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }


def uploaded(run: str, shard: int) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"run_id": run, "shard": str(shard), "outcome": "uploaded", "route": "none"}
    return ("aion_ingest_objects_total", frozenset(labels.items()))


async def test_one_port_serves_the_run_and_every_worker_even_after_exit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    books = [Accounting(10, 100), Accounting(20, 200)]
    for n, acct in enumerate(books):
        for o in range(n + 1):
            acct.record(o, Item(f"k{o}.jpg", 10), Outcome.UPLOADED)
    relay = WorkerRelay()
    run = RunCollector(lambda: RunSnapshot("r", "uploading", objects_planned=30))
    settings = MetricsSettings(port=0)
    async with (
        serve_metrics(settings, WorkerCollector(books[0], run_id="r", shard=0, version="v")) as w0,
        serve_metrics(settings, WorkerCollector(books[1], run_id="r", shard=1, version="v")) as w1,
        serve_metrics(settings, run, relay, before_scrape=relay.refresh) as whole,
    ):
        assert w0 and w1 and whole
        relay.add(0, w0.port or 0)
        relay.add(1, w1.port or 0)
        found = await scrape(whole.port or 0)
        assert found[uploaded("r", 0)] == 1
        assert found[uploaded("r", 1)] == 2
        assert found[("aion_ingest_run_objects_planned", frozenset({("run_id", "r")}))] == 30
        # shard 0's worker exits after one more outcome was scraped
        books[0].record(5, Item("k5.jpg", 10), Outcome.UPLOADED)
        await scrape(whole.port or 0)
        await w0.stop()
        relay.remove(0)
        found = await scrape(whole.port or 0)
        assert found[uploaded("r", 0)] == 2  # its final figures stay
    # a worker that never answers: one warning, the rest is served
    relay = WorkerRelay()
    relay.add(3, free_port())
    async with serve_metrics(settings, run, relay, before_scrape=relay.refresh) as whole:
        assert whole is not None
        with caplog.at_level(logging.WARNING):
            await scrape(whole.port or 0)
            found = await scrape(whole.port or 0)
        assert ("aion_ingest_run_objects_planned", frozenset({("run_id", "r")})) in found
        assert sum("cannot read shard 3" in r.getMessage() for r in caplog.records) == 1
