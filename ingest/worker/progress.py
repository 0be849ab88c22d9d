"""Progress: a log line every few seconds in a cluster, one redrawn bar on a terminal.

Both read :meth:`Accounting.snapshot`. Rates come from a sliding window of recent samples
(not the average since start) so the ETA follows the current pace after a slow start or a
429 back-off.
"""

from __future__ import annotations

import collections
import logging
import sys
from typing import TextIO

from ingest.planning.summary import human_bytes as human_bytes  # re-exported
from ingest.worker.accounting import Accounting, Snapshot
from ingest.worker.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("ingest.progress")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


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
        self.tty = tty if tty is not None else bool(getattr(self.stream, "isatty", bool)())
        self.interval = interval if interval is not None else (0.5 if self.tty else 5.0)
        self.window = window
        self.width = width
        self.clock = clock
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque()
        # The work since start is the rate until the window holds two samples: a run
        # shorter than one interval reports once, at its end, and must not say 0 obj/s.
        self._start = _sample(accounting.snapshot())
        self._drawn = 0

    def rates(self, snap: Snapshot) -> tuple[float, float]:
        """(objects/s, bytes/s) over the recent window, counting this snapshot."""
        self._samples.append(_sample(snap))
        while len(self._samples) > 2 and snap.at - self._samples[1][0] >= self.window:
            self._samples.popleft()
        t0, o0, b0 = self._samples[0] if len(self._samples) > 1 else self._start
        dt = snap.at - t0
        if dt <= 0:
            return 0.0, 0.0
        return (snap.objects - o0) / dt, (snap.bytes + snap.bytes_in_flight - b0) / dt

    def line(self, snap: Snapshot) -> tuple[str, dict[str, object]]:
        """The progress text and its fields (for JSON logs)."""
        obj_rate, byte_rate = self.rates(snap)
        remaining = max(0, snap.total_objects - snap.objects)
        eta = remaining / obj_rate if obj_rate > 0 else (0.0 if remaining == 0 else None)
        pct = 100.0 * snap.objects / snap.total_objects if snap.total_objects else 100.0
        failed = snap.by_outcome.get("failed", 0)
        text = (
            f"{snap.objects:,}/{snap.total_objects:,} objects ({pct:.1f}%), "
            f"{human_bytes(snap.bytes)}/{human_bytes(snap.total_bytes)}, "
            f"{obj_rate:.1f} obj/s, {human_bytes(byte_rate)}/s, ETA {human_duration(eta)}"
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
            "eta_seconds": None if eta is None else round(eta, 1),
            "in_flight": snap.in_flight,
            "outcomes": snap.by_outcome,
        }
        return text, fields

    def bar(self, snap: Snapshot) -> str:
        text, _ = self.line(snap)
        frac = snap.objects / snap.total_objects if snap.total_objects else 1.0
        filled = int(frac * self.width)
        return "[" + "#" * filled + "-" * (self.width - filled) + "] " + text

    def emit(self) -> None:
        snap = self.accounting.snapshot()
        if self.tty:
            text = self.bar(snap)
            # \r and pad over the previous, possibly longer, line: one line, redrawn.
            self.stream.write("\r" + text + " " * max(0, self._drawn - len(text)))
            self.stream.flush()
            self._drawn = len(text)
        else:
            text, fields = self.line(snap)
            log.info("progress: %s", text, extra=fields)

    def close(self) -> None:
        """The final report; on a terminal, end the bar's line."""
        self.emit()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    async def run(self) -> None:
        """Emit every ``interval`` seconds until cancelled."""
        while True:
            await self.clock.sleep(self.interval)
            self.emit()
