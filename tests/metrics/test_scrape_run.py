"""A real Prometheus scrapes a real run: two `aion-ingest work` processes uploading a planned
folder to the sandbox (429s, 5xx and two objects deleted after planning), with the chart's
rules loaded. The run-level endpoint is fed here with a snapshot (the orchestration wires its
progress model to the same collector)."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import time
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ingest.metrics.push import RunResult, push_run_result
from ingest.metrics.run import RunCollector, RunSnapshot
from ingest.metrics.server import serve_metrics
from ingest.settings import MetricsSettings
from tests.chart.conftest import BASE, CHART, Helm, merge
from tests.fixtures.ports import free_port
from tests.fixtures.prometheus import Prometheus, Pushgateway, start_prometheus, stop_prometheus
from tests.metrics.promql import (
    DASHBOARD_JSON,
    dashboard_module,
    dashboard_queries,
    metric_names,
    rule_groups,
)
from tests.metrics.runs import ingest_env
from tests.run.helpers import make_source

RUN = "mrun"
LABELS = {"namespace": "imports", "release": "nightly"}


def _env(sandbox: Any) -> dict[str, str]:
    return ingest_env(
        sandbox,
        INGEST_API__BACKOFF_BASE="0.05",
        INGEST_API__BACKOFF_MAX="0.5",
        INGEST_WORKER__BATCH_FILES="5",
        INGEST_WORKER__CONCURRENCY="2",
        # 2 workers x 5 requests/s against a sandbox that allows 6/s: 429s
        INGEST_WORKER__REQUESTS_PER_MINUTE="600",
        INGEST_WORKER__PARALLEL_WORKERS="2",
        INGEST_WORKER__FLUSH_SECONDS="0.5",
        INGEST_METRICS__LINGER_SECONDS="4",
        INGEST_LOG__FORMAT="json",
    )


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ingest",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, (out + err).decode()


def _value(result: list[dict[str, Any]]) -> float:
    return sum(float(r["value"][1]) for r in result)


@pytest.mark.timeout(240)
async def test_prometheus_scrapes_a_real_run_and_agrees_with_the_report(
    tmp_path: pathlib.Path, sandbox: Any, helm: Helm, pushgateway: Pushgateway
) -> None:
    src, state = tmp_path / "src", tmp_path / "state"
    files = make_source(src, 240)
    env = _env(sandbox)
    code, out = await _run(
        "plan", str(src), "--state", f"file://{state}", "--run-id", RUN, "--shards", "2", env=env
    )
    assert code == 0, out
    for gone in files[:2]:  # deleted after planning: two failures, reason source_gone
        gone.unlink()
    planned = json.loads((state / "runs" / RUN / "run.json").read_text())
    # 429s all along the run (a pace limit alone is met by the workers' back-off after its
    # first burst, which may come before the first scrape: a rate needs two samples)
    sandbox.set_faults(
        rate_limit_rps=6, rate_limit_fraction=0.08, error_rate=0.1, latency_ms=10, seed=5
    )

    proc = await asyncio.to_thread(
        helm.run,
        "template",
        "nightly",
        str(CHART),
        "--namespace",
        "imports",
        values=merge(BASE, {"metrics": {"enabled": True}}),
    )
    assert proc.returncode == 0, proc.stderr
    groups = rule_groups(proc)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))

    total = sum(1 for _ in src.rglob("*") if _.is_file()) + 2
    view = [
        RunSnapshot(
            RUN,
            "uploading",
            objects_planned=total,
            bytes_planned=1,
            shard_states={"running": 2},
            eta_seconds=30.0,
            quota_available_files=10_000,
        )
    ]
    ports = [free_port(), free_port()]
    started = time.time()
    async with serve_metrics(MetricsSettings(port=0), RunCollector(lambda: view[0])) as run_srv:
        assert run_srv is not None
        targets = [(f"127.0.0.1:{p}", LABELS) for p in [run_srv.port, *ports]]
        prom = await asyncio.to_thread(start_prometheus, tmp_path / "prom", targets, rules)
        try:
            workers = [
                _run(
                    "work",
                    "--run-id",
                    RUN,
                    "--state",
                    f"file://{state}",
                    "--index",
                    str(i),
                    "--metrics-port",
                    str(port),
                    env=env,
                )
                for i, port in enumerate(ports)
            ]
            results = await asyncio.gather(*workers)
            for code, out in results:
                assert code == 0, out[-3000:]
            view[0] = RunSnapshot(RUN, "done", objects_planned=total, objects_done=total)
            code, out = await _run("report", RUN, "--state", f"file://{state}", env=env)
            assert code == 0, out
            report = json.loads((state / "runs" / RUN / "report.json").read_text())
            await asyncio.to_thread(_check, prom, report, groups, started, sandbox.api_key)
            # the end of the run, pushed: the gateway holds it with the report's figures
            result = RunResult(RUN, 0, report["duration_seconds"], report["by_outcome"])
            settings = MetricsSettings(pushgateway_url=pushgateway.url, release="nightly")
            assert await asyncio.to_thread(push_run_result, settings, result)
            text = pushgateway.metrics_text()
            assert sandbox.api_key not in text
            pushed = {
                s.labels["outcome"]: s.value
                for fam in text_string_to_metric_families(text)
                for s in fam.samples
                if s.name == "aion_ingest_run_objects"
                and s.labels.get("release") == "nightly"
                and s.labels.get("run_id") == RUN
            }
            assert pushed == {k: float(v) for k, v in report["by_outcome"].items()}
        finally:
            await asyncio.to_thread(stop_prometheus, prom)
    assert planned["shards"] == 2


def _check(
    prom: Prometheus,
    report: dict[str, Any],
    groups: list[dict[str, Any]],
    started: float,
    api_key: str,
) -> None:
    # 1. the workers' counters, as last scraped, are the report's counts
    by_outcome = {
        r["metric"]["outcome"]: int(float(r["value"][1]))
        for r in prom.query(
            f'sum by (outcome) (last_over_time(aion_ingest_objects_total{{run_id="{RUN}"}}[10m]))'
        )
    }
    assert by_outcome == {k: v for k, v in report["by_outcome"].items()}
    assert by_outcome["failed"] >= 2 and by_outcome["uploaded"] > 100
    gone = prom.query(
        'sum(last_over_time(aion_ingest_object_failures_total{reason="source_gone"}[10m]))'
    )
    assert _value(gone) == 2
    # One vocabulary: the label's values are the report's failure codes, counts alike.
    by_reason = {
        r["metric"]["reason"]: int(float(r["value"][1]))
        for r in prom.query(
            "sum by (reason) (last_over_time("
            f'aion_ingest_object_failures_total{{run_id="{RUN}"}}[10m])) > 0'
        )
    }
    assert by_reason == report["failed_by_reason"]
    causes = {
        r["metric"]["cause"]
        for r in prom.query("sum by (cause) (last_over_time(aion_ingest_retries_total[10m])) > 0")
    }
    assert {"429", "5xx"} <= causes

    # 2. while the workers worked, every recording rule and dashboard query had data: asked
    # at the last scrape that still reached both workers (their lingering final figures)
    last = [
        r["values"][-1][0] for r in prom.query(f'aion_ingest_build_info{{run_id="{RUN}"}}[10m]')
    ]
    assert len(last) == 2
    at = min(last)
    empty = []
    for group in groups:
        for rule in group["rules"]:
            # a recorded series had samples during the run (its evaluations are not aligned
            # with the scrapes, so not asked at one instant)
            if "record" in rule and not prom.query(f"count_over_time({rule['record']}[10m])"):
                empty.append(rule["record"])
    kube = set(dashboard_module().KUBE_STATE_METRICS)
    dashboard = json.loads(DASHBOARD_JSON.read_text())
    skipped = []
    for expr in dashboard_queries(dashboard):
        if metric_names(expr) & kube:
            skipped.append(expr)
            continue
        if not prom.query(expr, at=at):
            empty.append(expr)
    assert not empty, f"no data at {at} for: {empty}"
    # only the kube-state-metrics queries are left out (no Kubernetes here)
    assert len(skipped) == 2 and all("kube_job_status_" in e for e in skipped)

    # 3. no secret in any label of any series
    for series in prom.series('{__name__=~"aion_ingest.*"}', started - 60):
        for name, value in series.items():
            assert api_key not in value, (name, value)
            assert "X-Amz-" not in value and "Signature=" not in value, (name, value)
            assert "?" not in value, (name, value)
