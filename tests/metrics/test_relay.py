"""One port for a local run: the relay re-exports its workers' series; an exited worker's
last figures stay until a scrape served them and the linger passed, then go."""

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


def shards_in(found: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> set[str]:
    return {dict(labels)["shard"] for name, labels in found if name == "aion_ingest_build_info"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_one_port_serves_the_run_and_every_worker_then_drops_exited_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    books = [Accounting(10, 100), Accounting(20, 200)]
    for n, acct in enumerate(books):
        for o in range(n + 1):
            acct.record(o, Item(f"k{o}.jpg", 10), Outcome.UPLOADED)
    clock = Clock()
    relay = WorkerRelay(linger=30, clock=clock)
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
        # shard 0's worker ends with one more outcome, read while it still serves, then exits
        books[0].record(5, Item("k5.jpg", 10), Outcome.UPLOADED)
        await scrape(whole.port or 0)
        await w0.stop()
        with caplog.at_level(logging.WARNING):
            # its final figures stay, scrape after scrape, until the linger has passed
            found = await scrape(whole.port or 0)
            assert found[uploaded("r", 0)] == 2
            clock.now += 29
            assert (await scrape(whole.port or 0))[uploaded("r", 0)] == 2
            clock.now += 1
            found = await scrape(whole.port or 0)
        assert shards_in(found) == {"1"}  # then its series go; the live worker's stay
        assert found[uploaded("r", 1)] == 2
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # an exit is fine
        assert relay.ports == {1: w1.port}

        # a worker that ends between two scrapes: however long the gap, one scrape serves
        # its last figures before they go
        books[1].record(7, Item("k7.jpg", 10), Outcome.UPLOADED)
        await w1.stop()
        relay.remove(1)  # the launcher saw it exit
        clock.now += 3600
        found = await scrape(whole.port or 0)
        assert found[uploaded("r", 1)] == 2  # the last figures read (not the unread 3rd)
        found = await scrape(whole.port or 0)
        assert not shards_in(found)
        assert ("aion_ingest_run_objects_planned", frozenset({("run_id", "r")})) in found

    # a relaunched index serves again, under the same shard, from its own counters
    async with (
        serve_metrics(settings, WorkerCollector(books[0], run_id="r", shard=0, version="v")) as w0,
        serve_metrics(settings, run, relay, before_scrape=relay.refresh) as whole,
    ):
        assert w0 and whole
        relay.add(0, w0.port or 0)
        found = await scrape(whole.port or 0)
        assert shards_in(found) == {"0"} and found[uploaded("r", 0)] == 2


async def test_a_port_that_now_serves_another_shard_is_not_taken_for_it() -> None:
    acct = Accounting(10, 100)
    relay = WorkerRelay(linger=0)
    settings = MetricsSettings(port=0)
    async with (
        serve_metrics(settings, WorkerCollector(acct, run_id="r", shard=4, version="v")) as w4,
        serve_metrics(settings, relay, before_scrape=relay.refresh) as whole,
    ):
        assert w4 and whole
        relay.add(4, w4.port or 0)
        relay.add(2, w4.port or 0)  # shard 2's old port, taken by shard 4's worker
        found = await scrape(whole.port or 0)
        assert shards_in(found) == {"4"}
        assert 2 not in relay.ports


async def test_a_worker_that_never_answered_is_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = RunCollector(lambda: RunSnapshot("r", "uploading", objects_planned=30))
    settings = MetricsSettings(port=0)
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
