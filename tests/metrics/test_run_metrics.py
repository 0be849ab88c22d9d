"""`aion-ingest run --metrics-port P` on one machine: the run's own series and, relayed,
every worker's on that one port; the Pushgateway holds the run's end figures after it."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.ports import free_port
from tests.fixtures.prometheus import Pushgateway
from tests.metrics.runs import ingest_env
from tests.run.helpers import make_source

RUN = "wired"


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    ]


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())
    except OSError:
        return None  # not serving (yet, or any more)


@pytest.mark.timeout(240)
async def test_a_local_run_serves_run_and_worker_series_on_one_port_and_pushes_its_end(
    tmp_path: pathlib.Path, sandbox: Any, pushgateway: Pushgateway
) -> None:
    src, state = tmp_path / "src", tmp_path / "state"
    make_source(src, 60)
    sandbox.set_faults(latency_ms=40, seed=3)
    port = free_port()
    env = ingest_env(
        sandbox,
        XDG_DATA_HOME=str(tmp_path / "data"),
        INGEST_WORKER__BATCH_FILES="2",
        INGEST_WORKER__CONCURRENCY="1",
        INGEST_WORKER__FLUSH_SECONDS="0.2",
        # each worker serves its last figures a while, so the run's port relays them
        INGEST_METRICS__LINGER_SECONDS="2",
        INGEST_METRICS__PUSHGATEWAY_URL=pushgateway.url,
        INGEST_METRICS__RELEASE="laptop",
    )
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "ingest", "run", str(src), "--state", f"file://{state}"],
        *["--run-id", RUN, "--shards", "2", "-p", "2", "--metrics-port", str(port)],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = asyncio.create_task(proc.communicate())
    scrapes: list[str] = []
    while not output.done():  # scrape as Prometheus would, until the run stops serving
        text = await asyncio.to_thread(_scrape, port)
        if text is not None:
            scrapes.append(text)
        await asyncio.wait({output}, timeout=0.2)
    out, _ = await output
    assert proc.returncode == 0, out.decode()[-3000:]
    report = json.loads((state / "runs" / RUN / "report.json").read_text())

    assert scrapes, "the run never served /metrics"
    uploading = [
        t
        for t in scrapes
        if ({"run_id": RUN, "phase": "uploading"}, 1.0) in _samples(t, "aion_ingest_run_phase")
    ]
    assert uploading, "no scrape saw the run uploading"
    planned = _samples(uploading[-1], "aion_ingest_run_objects_planned")
    plan = json.loads((state / "runs" / RUN / "run.json").read_text())
    assert planned == [({"run_id": RUN}, float(plan["items"]))]
    # each series' last scraped value, as Prometheus's last_over_time() sees it (the relay
    # drops an exited worker's series once they were served and lingered)
    last: dict[frozenset[tuple[str, str]], float] = {}
    for text in scrapes:
        for labels, value in _samples(text, "aion_ingest_objects_total"):
            last[frozenset(labels.items())] = value
    shards = {dict(key)["shard"] for key in last}
    assert shards == {"0", "1"}, "both workers' series come through the run's port"
    by_outcome: dict[str, float] = {}
    for key, value in last.items():
        outcome = dict(key)["outcome"]
        assert dict(key)["run_id"] == RUN
        by_outcome[outcome] = by_outcome.get(outcome, 0.0) + value
    assert {k: v for k, v in by_outcome.items() if v} == {
        k: float(v) for k, v in report["by_outcome"].items() if v
    }
    assert all(sandbox.api_key not in t for t in scrapes)

    text = pushgateway.metrics_text()
    pushed = {
        (s.name, s.labels.get("outcome")): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.labels.get("release") == "laptop" and s.labels.get("run_id") == RUN
    }
    assert pushed[("aion_ingest_run_exit_code", None)] == 0.0
    assert pushed[("aion_ingest_run_duration_seconds", None)] > 0
    assert {
        outcome: v for (name, outcome), v in pushed.items() if name == "aion_ingest_run_objects"
    } == {k: float(v) for k, v in report["by_outcome"].items()}
    assert sandbox.api_key not in text
