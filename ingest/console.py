"""How progress looks, once for everyone: sizes, durations, rates and a redrawn status line.

A worker shows its shard (:mod:`ingest.worker.progress`) and the orchestration shows the
whole run (:mod:`ingest.orchestration.progress`) the same way: a bar redrawn in place on
a terminal, a log line every few seconds elsewhere. This module sits at the bottom of the
layers, so both can import it; it knows no run, no shard and no store.
"""

from __future__ import annotations

import collections
import logging
from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def bar(fraction: float, width: int = 24) -> str:
    """``[######------]``: ``fraction`` (0..1) of ``width`` cells filled."""
    filled = int(min(max(fraction, 0.0), 1.0) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class RateWindow:
    """Rates over a sliding window of recent samples, not the average since the start, so
    an ETA follows the current pace after a slow start or a back-off.

    Until the window holds two samples, the rate is the work since ``start``: a run
    shorter than one interval reports once, at its end, and must not say 0/s.
    """

    def __init__(self, start: tuple[float, int, int], window: float = 30.0) -> None:
        self.window = window
        self._start = start
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque()

    def add(self, at: float, objects: int, nbytes: int) -> tuple[float, float]:
        """Record a sample; (objects/s, bytes/s) over the window, counting it."""
        self._samples.append((at, objects, nbytes))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self.window:
            self._samples.popleft()
        t0, o0, b0 = self._samples[0] if len(self._samples) > 1 else self._start
        elapsed = at - t0
        if elapsed <= 0:
            return 0.0, 0.0
        return (objects - o0) / elapsed, (nbytes - b0) / elapsed


def eta(remaining: int, rate: float) -> float | None:
    """Seconds to go at ``rate`` per second; 0 when nothing remains, None when unknown."""
    if remaining <= 0:
        return 0.0
    return remaining / rate if rate > 0 else None


class StatusLine:
    """One line redrawn in place on a terminal: ``\\r``, the text, padding over the rest.

    As a logging filter (:meth:`filter`) it erases itself before each log line, so the
    two never collide; the next :meth:`draw` brings it back.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._drawn = 0

    def draw(self, text: str) -> None:
        self.stream.write("\r" + text + " " * max(0, self._drawn - len(text)))
        self.stream.flush()
        self._drawn = len(text)

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.clear()
        return True

    def end(self) -> None:
        """Leave the last drawing on screen and move to a new line."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0


def is_tty(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", bool)())
