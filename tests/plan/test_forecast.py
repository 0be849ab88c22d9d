"""The run's predicted duration and quota (ingest/planning/forecast.py): arithmetic only."""

from __future__ import annotations

import pytest

from ingest.planning.forecast import (
    Pace,
    Workload,
    forecast,
    requests_for,
    workload_from_histogram,
)
from ingest.settings import parse_duration


def test_requests_per_mode_and_route() -> None:
    w = Workload(batch_files=1000)
    # 50 batches of 20; ids: 'list' one page per 100 files, 'fetch' one per batch
    assert requests_for(w, 20, "accept") == 1 + 50
    assert requests_for(w, 20, "list") == 1 + 50 + 10
    assert requests_for(w, 20, "fetch") == 1 + 50 + 50
    assert requests_for(w, 5, "fetch") == 1 + 200  # inline results: nothing more
    mixed = Workload(batch_files=0, stream_files=7, presigned_files=3)
    assert requests_for(mixed, 20, "list") == 1 + 7 + 2 * 3


def test_duration_is_requests_over_the_key_budget_whatever_the_parallelism() -> None:
    w = Workload(batch_files=3600, bytes=3600 * 8192)
    one = forecast(w, Pace(120, 20, parallelism=1, batch_results="list"))
    four = forecast(w, Pace(120, 20, parallelism=4, batch_results="list"))
    # 180 batches + 36 pages + the quota check = 217 requests at 2/s
    assert one.requests == four.requests == 217
    assert one.seconds == four.seconds == pytest.approx(108.5)
    assert one.files_per_minute == pytest.approx(3600 / 108.5 * 60)
    assert one.warnings == ()


def test_a_bandwidth_cap_bounds_it_from_the_other_side() -> None:
    w = Workload(batch_files=0, stream_files=10, bytes=10 * 50 * 2**20)
    pace = Pace(requests_per_minute=500, files_per_batch=50, parallelism=2, bytes_per_second=2**20)
    assert forecast(w, pace).seconds == pytest.approx(250.0)  # 500 MiB at 2 x 1 MiB/s


def test_the_quota_warning_says_what_fits() -> None:
    f = forecast(Workload(batch_files=1200), Pace(10, 10), quota_available=1000)
    assert f.quota_after == -200
    (warning,) = f.warnings
    assert "monthly quota will not hold" in warning and "1,000 objects at most" in warning
    assert forecast(Workload(batch_files=10), Pace(10, 10)).quota_after is None


def test_the_deadline_warning_names_a_tier_keys_and_a_smaller_run() -> None:
    # FREE: 1,000,000 files in 100,000 batches + 10,000 pages at 10/min: about 7.6 days
    w = Workload(batch_files=1_000_000)
    f = forecast(w, Pace(10, 10, batch_results="list"), deadline_seconds=parse_duration("6h"))
    (warning,) = f.warnings
    assert "will not finish by the deadline" in warning
    assert "tier ENTERPRISE" in warning  # 500/min x 50 files: 20,000 + 10,000 requests, 1 h
    assert "31 keys" in warning
    assert "about 32,726 objects" in warning
    ok = forecast(w, Pace(500, 50, batch_results="list"), deadline_seconds=parse_duration("6h"))
    assert ok.warnings == ()


def test_routes_from_the_plan_histogram() -> None:
    hist = {"<64KiB": 5, "64KiB-1MiB": 4, "1-10MiB": 3, "10-100MiB": 2, "100MiB-1GiB": 1}
    assert workload_from_histogram(hist, 99) == Workload(9, 5, 1, 99)
    assert workload_from_histogram(hist, 99, 64 * 1024) == Workload(5, 9, 1, 99)


@pytest.mark.parametrize(
    ("text", "seconds"), [("6h", 21600), ("90m", 5400), ("45s", 45), ("2d", 172800), ("30", 30)]
)
def test_deadlines_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6x", "-1h", "0", "soon"])
def test_bad_deadlines_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_status_puts_the_measured_rate_beside_the_forecast() -> None:
    from ingest.commands.status import _against_forecast

    assert _against_forecast(600, 60.0, 5.0) == (
        "forecast: 60 s for the whole run, 600 objects/min; measured 300 objects/min (50% of it)"
    )
    assert _against_forecast(600, 60.0, 0.0) == "forecast: 60 s for the whole run, 600 objects/min"
