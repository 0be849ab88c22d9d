"""The end-of-run push, against Debian's real Pushgateway."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.metrics.push import RunResult, push_run_result, push_run_result_async
from ingest.settings import MetricsSettings
from tests.fixtures.ports import free_port
from tests.fixtures.prometheus import Pushgateway


def pushed(gw: Pushgateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(gw.metrics_text()):
        for s in fam.samples:
            if s.name.startswith("aion_ingest_"):
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def labels(run_id: str, **extra: str) -> frozenset[tuple[str, str]]:
    return frozenset(
        {
            "job": "aion-ingest",
            "release": "nightly",
            "instance": "",
            "run_id": run_id,
            **extra,
        }.items()
    )


def test_one_group_per_job_and_release_and_a_failure_keeps_the_last_success(
    pushgateway: Pushgateway,
) -> None:
    settings = MetricsSettings(pushgateway_url=pushgateway.url, release="nightly")
    ok = RunResult("run-1", 0, 120.0, {"uploaded": 90, "failed": 3}, finished_at=1_700_000_000.0)
    assert push_run_result(settings, ok) is True
    got = pushed(pushgateway)
    assert got[("aion_ingest_run_exit_code", labels("run-1"))] == 0
    assert got[("aion_ingest_run_duration_seconds", labels("run-1"))] == 120
    assert got[("aion_ingest_run_last_success_timestamp_seconds", labels("run-1"))] == 1.7e9
    assert got[("aion_ingest_run_objects", labels("run-1", outcome="uploaded"))] == 90
    assert got[("aion_ingest_run_objects", labels("run-1", outcome="skipped_filtered"))] == 0

    failed = RunResult("run-2", 1, 30.0, {"uploaded": 5, "failed": 50})
    assert push_run_result(settings, failed) is True
    got = pushed(pushgateway)
    # the new run replaced the group's figures, not the last success
    assert got[("aion_ingest_run_exit_code", labels("run-2"))] == 1
    assert ("aion_ingest_run_exit_code", labels("run-1")) not in got
    assert got[("aion_ingest_run_last_success_timestamp_seconds", labels("run-1"))] == 1.7e9
    assert got[("aion_ingest_run_objects", labels("run-2", outcome="failed"))] == 50
    # one group: this release's series are its runs' (other tests' releases share the
    # session's Pushgateway), and no pushed series names a pod or a shard
    ours = {k for k in got if dict(k[1]).get("release") == "nightly"}
    assert {dict(k[1])["run_id"] for k in ours} == {"run-1", "run-2"}
    assert not any("shard" in dict(k[1]) or "pod" in dict(k[1]) for k in got)


async def test_an_unreachable_pushgateway_logs_once_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://user:secret@127.0.0.1:{free_port()}"
    settings = MetricsSettings(pushgateway_url=url, push_timeout=2)
    with caplog.at_level(logging.WARNING):
        assert await push_run_result_async(settings, RunResult("r", 0, 1.0, {})) is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "could not push" in warnings[0].getMessage()
    assert "secret" not in caplog.text


def test_no_pushgateway_configured_pushes_nothing() -> None:
    assert push_run_result(MetricsSettings(), RunResult("r", 0, 1.0, {})) is False
