"""A worker's progress: a log line every few seconds in a cluster, one redrawn bar on a
terminal, both read from :meth:`Accounting.snapshot` and drawn by :mod:`ingest.console`
(which draws the whole run's progress the same way). Rates come from a sliding window of
recent samples (:class:`ingest.console.RateWindow`), so the ETA follows the current pace
after a slow start or a 429 back-off.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from ingest.console import RateWindow, StatusLine, eta, human_bytes, human_duration, is_tty
from ingest.console import bar as bar_of
from ingest.worker.accounting import Accounting, Snapshot
from ingest.worker.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("ingest.progress")


def _sample(snap: Snapshot) -> tuple[float, int, int]:
    """(time, objects, bytes sent) of a snapshot, resumed work included."""
    return snap.at, snap.objects, snap.bytes + snap.bytes_in_flight


class Progress:
    """Reports a worker's progress every ``interval`` seconds (see :meth:`run`).

    ``tty`` None means: a bar when ``stream`` is a terminal, log lines otherwise.
    """

    def __init__(
        self,
        accounting: Accounting,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float | None = None,
        window: float = 30.0,
        width: int = 24,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.accounting = accounting
        self.stream = stream or sys.stderr
        self.tty = tty if tty is not None else is_tty(self.stream)
        self.interval = interval if interval is not None else (0.5 if self.tty else 5.0)
        self.width = width
        self.clock = clock
        self._rates = RateWindow(_sample(accounting.snapshot()), window)
        self._line = StatusLine(self.stream)

    def rates(self, snap: Snapshot) -> tuple[float, float]:
        """(objects/s, bytes/s) over the recent window, counting this snapshot."""
        return self._rates.add(*_sample(snap))

    def line(self, snap: Snapshot) -> tuple[str, dict[str, object]]:
        """The progress text and its fields (for JSON logs)."""
        obj_rate, byte_rate = self.rates(snap)
        left = eta(snap.total_objects - snap.objects, obj_rate)
        pct = 100.0 * snap.objects / snap.total_objects if snap.total_objects else 100.0
        failed = snap.by_outcome.get("failed", 0)
        text = (
            f"{snap.objects:,}/{snap.total_objects:,} objects ({pct:.1f}%), "
            f"{human_bytes(snap.bytes)}/{human_bytes(snap.total_bytes)}, "
            f"{obj_rate:.1f} obj/s, {human_bytes(byte_rate)}/s, ETA {human_duration(left)}"
        )
        if failed:
            text += f", {failed:,} failed"
        fields: dict[str, object] = {
            "objects": snap.objects,
            "total_objects": snap.total_objects,
            "bytes": snap.bytes,
            "total_bytes": snap.total_bytes,
            "objects_per_second": round(obj_rate, 3),
            "bytes_per_second": round(byte_rate),
            "eta_seconds": None if left is None else round(left, 1),
            "in_flight": snap.in_flight,
            "outcomes": snap.by_outcome,
        }
        return text, fields

    def bar(self, snap: Snapshot) -> str:
        text, _ = self.line(snap)
        frac = snap.objects / snap.total_objects if snap.total_objects else 1.0
        return bar_of(frac, self.width) + " " + text

    def emit(self) -> None:
        snap = self.accounting.snapshot()
        if self.tty:
            self._line.draw(self.bar(snap))
        else:
            text, fields = self.line(snap)
            log.info("progress: %s", text, extra=fields)

    def close(self) -> None:
        """The final report; on a terminal, end the bar's line."""
        self.emit()
        self._line.end()

    async def run(self) -> None:
        """Emit every ``interval`` seconds until cancelled."""
        while True:
            await self.clock.sleep(self.interval)
            self.emit()
