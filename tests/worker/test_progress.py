"""Progress: log lines off a terminal, a redrawn bar on one; rates from a recent window."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest

from ingest.items import FailureCode, Item, Outcome
from ingest.worker.accounting import Accounting
from ingest.worker.progress import Progress
from tests.worker.fakeclock import FakeClock


def finish(acct: Accounting, start: int, n: int, size: int = 1024) -> None:
    for o in range(start, start + n):
        acct.record(o, Item(key=f"{o}.jpg", size=size), Outcome.UPLOADED)


async def test_log_lines_every_interval_with_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    acct = Accounting(1000, 1000 * 1024, clock=clock)
    progress = Progress(acct, stream=io.StringIO(), tty=False, clock=clock)
    assert progress.interval == 5.0
    caplog.set_level(logging.INFO, logger="ingest.progress")
    task = asyncio.create_task(progress.run())
    progress.emit()  # the first sample, at t=0
    for step in range(4):
        finish(acct, step * 50, 50)
        await clock.sleep(5.0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    lines = [r for r in caplog.records if r.name == "ingest.progress"]
    assert len(lines) == 5
    last = lines[-1]
    assert "200/1,000 objects (20.0%)" in last.getMessage()
    assert "10.0 obj/s" in last.getMessage()
    assert "ETA 1m20s" in last.getMessage()
    assert last.objects == 200  # type: ignore[attr-defined]
    assert last.eta_seconds == 80.0  # type: ignore[attr-defined]


async def test_the_window_follows_the_current_pace() -> None:
    clock = FakeClock()
    acct = Accounting(10_000, 0, clock=clock)
    progress = Progress(acct, tty=False, window=10.0, clock=clock)
    progress.line(acct.snapshot())
    finish(acct, 0, 1000, size=0)  # a fast start ...
    clock.advance(5)
    progress.line(acct.snapshot())
    for k in range(6):  # ... then 1 object/s
        finish(acct, 1000 + k * 5, 5, size=0)
        clock.advance(5)
        _, fields = progress.line(acct.snapshot())
    assert fields["objects_per_second"] == pytest.approx(1.0)


def test_a_bar_on_a_terminal_redraws_one_line() -> None:
    clock = FakeClock()
    out = io.StringIO()
    acct = Accounting(4, 4096, clock=clock)
    progress = Progress(acct, stream=out, tty=True, width=8, clock=clock)
    assert progress.interval == 0.5
    progress.emit()
    finish(acct, 0, 2)
    acct.record(
        2, Item(key="x.jpg", size=1024), Outcome.FAILED, reason="gone", code=FailureCode.SOURCE_GONE
    )
    clock.advance(1)
    progress.close()
    text = out.getvalue()
    assert text.startswith("\r[--------] 0/4 objects")
    assert "\r[######--] 3/4 objects (75.0%)" in text
    assert "1 failed" in text
    assert text.endswith("\n")
    assert text.count("\n") == 1


def test_an_empty_shard_reads_complete() -> None:
    acct = Accounting(0, 0, clock=FakeClock())
    text, fields = Progress(acct, tty=False, clock=FakeClock()).line(acct.snapshot())
    assert "0/0 objects (100.0%)" in text
    assert fields["eta_seconds"] == 0.0


def test_a_run_shorter_than_one_interval_reports_its_rate_since_start() -> None:
    """One sample in the window (the final report of a fast run): the rate is the work
    since the progress started, resumed objects not counted."""
    clock = FakeClock()
    acct = Accounting(1000, 1000 * 1024, clock=clock)
    acct.resumed(100, 100 * 1024)
    progress = Progress(acct, tty=False, clock=clock)
    finish(acct, 100, 300)
    clock.advance(2.0)
    text, fields = progress.line(acct.snapshot())
    assert fields["objects_per_second"] == pytest.approx(150.0)
    assert fields["bytes_per_second"] == 150 * 1024
    assert "150.0 obj/s" in text and "ETA 4s" in text
