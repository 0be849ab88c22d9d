"""The shared progress display: sizes, durations, bars, rates, one redrawn line."""

from __future__ import annotations

import io
import logging

import pytest

from ingest.console import RateWindow, StatusLine, bar, eta, human_bytes, human_duration


def test_humans_read_sizes_and_durations() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"
    assert human_duration(None) == "?"
    assert human_duration(42) == "42s"
    assert human_duration(83) == "1m23s"
    assert human_duration(7322) == "2h02m"


def test_bar_fills_its_share_and_clamps() -> None:
    assert bar(0.5, 8) == "[####----]"
    assert bar(1.5, 4) == "[####]"
    assert bar(-1, 4) == "[----]"


def test_rate_window_uses_the_start_until_two_samples_then_the_window() -> None:
    rates = RateWindow((0.0, 0, 0), window=10.0)
    assert rates.add(2.0, 100, 1000) == (50.0, 500.0)  # since the start
    rates.add(4.0, 200, 2000)
    for t in range(1, 6):  # then 1 object/s for 25 s: the window forgets the fast start
        got = rates.add(4.0 + 5 * t, 200 + 5 * t, 2000)
    assert got[0] == pytest.approx(1.0)
    assert eta(10, 2.0) == 5.0 and eta(0, 0.0) == 0.0 and eta(3, 0.0) is None


def test_status_line_redraws_and_clears_before_log_lines() -> None:
    out = io.StringIO()
    line = StatusLine(out)
    line.draw("long text")
    line.draw("short")
    assert out.getvalue() == "\rlong text\rshort    "
    assert line.filter(logging.makeLogRecord({})) is True  # erases itself for the log line
    assert out.getvalue().endswith("\r\033[K")
    line.end()  # nothing drawn since: no empty line
    assert not out.getvalue().endswith("\n")
    line.draw("x")
    line.end()
    assert out.getvalue().endswith("\rx\n")
