"""The run's progress, one model for every reader: the terminal bar, the log lines, metrics.

:class:`RunTracker` reads the shards' checkpoints from the state store (the only place
that knows, whether the workers are local processes or pods) into a :class:`RunProgress`,
a plain frozen record other code can read (``tracker.latest``). :class:`ProgressView`
shows it: a bar redrawn in place on a terminal, a log line elsewhere, drawn by
:mod:`ingest.console` as a worker's own progress is.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

from ingest.console import (
    RateWindow,
    StatusLine,
    bar,
    eta,
    human_bytes,
    human_duration,
    is_tty,
)
from ingest.report import ShardStatus, shard_statuses
from ingest.state.base import StateStore
from ingest.state.records import RunPlan

log = logging.getLogger("ingest.progress")


@dataclasses.dataclass(frozen=True)
class RunProgress:
    """Where a run stands, as its checkpoints say.

    ``done_bytes`` is estimated (a checkpoint counts objects, not bytes): each shard's
    bytes times its done fraction. Rates are over a recent window of samples.
    """

    run_id: str
    at: float  # monotonic seconds
    planned_objects: int
    planned_bytes: int
    done_objects: int
    done_bytes: int
    objects_per_second: float
    bytes_per_second: float
    eta_seconds: float | None
    shards: tuple[ShardStatus, ...]

    @property
    def fraction(self) -> float:
        return self.done_objects / self.planned_objects if self.planned_objects else 1.0

    def shard_states(self) -> dict[str, int]:
        """How many shards are ``complete``, ``in progress``, ``not started``."""
        counts = {"complete": 0, "in progress": 0, "not started": 0}
        for s in self.shards:
            counts[s.state] += 1
        return counts

    def text(self) -> str:
        states = self.shard_states()
        return (
            f"{self.done_objects:,}/{self.planned_objects:,} objects "
            f"({100.0 * self.fraction:.1f}%), ~{human_bytes(self.done_bytes)}"
            f"/{human_bytes(self.planned_bytes)}, shards {states['complete']}"
            f"/{len(self.shards)} complete, {states['in progress']} in progress, "
            f"{self.objects_per_second:.1f} obj/s, ETA {human_duration(self.eta_seconds)}"
        )

    def fields(self) -> dict[str, object]:
        """The numbers, for JSON log lines."""
        return {
            "run_id": self.run_id,
            "objects": self.done_objects,
            "total_objects": self.planned_objects,
            "bytes": self.done_bytes,
            "total_bytes": self.planned_bytes,
            "objects_per_second": round(self.objects_per_second, 3),
            "bytes_per_second": round(self.bytes_per_second),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "shards": self.shard_states(),
        }


class RunTracker:
    """Samples a run's progress from the state store; ``latest`` is the last sample.

    The first sample is the baseline: what was done before this process started (a
    resumed run, an adopted Job) does not count towards the rate.
    """

    def __init__(
        self,
        store: StateStore,
        plan: RunPlan,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.plan = plan
        self.window = window
        self.clock = clock
        self.latest: RunProgress | None = None
        self._rates: RateWindow | None = None

    async def sample(self) -> RunProgress:
        statuses = tuple(await shard_statuses(self.store, self.plan))
        return self.record(statuses)

    def record(self, statuses: tuple[ShardStatus, ...]) -> RunProgress:
        """A sample from shard statuses read at ``clock()`` (tests feed these directly)."""
        now = self.clock()
        done = sum(s.done for s in statuses)
        done_bytes = sum(s.bytes * s.done // max(s.items, 1) for s in statuses)
        if self._rates is None:
            self._rates = RateWindow((now, done, done_bytes), self.window)
        obj_rate, byte_rate = self._rates.add(now, done, done_bytes)
        self.latest = RunProgress(
            run_id=self.plan.run_id,
            at=now,
            planned_objects=self.plan.items,
            planned_bytes=self.plan.bytes,
            done_objects=done,
            done_bytes=done_bytes,
            objects_per_second=obj_rate,
            bytes_per_second=byte_rate,
            eta_seconds=eta(self.plan.items - done, obj_rate),
            shards=statuses,
        )
        return self.latest


class ProgressView:
    """Shows the run: a bar redrawn on a terminal, else a log line per sample.

    ``say`` writes a line for people; on a terminal it first erases the bar (and, as a
    logging filter, so does every log line), so the two never collide.
    """

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = is_tty(self.stream) if tty is None else tty
        self._line = StatusLine(self.stream)

    def show(self, progress: RunProgress) -> None:
        if self.tty:
            self._line.draw(f"{bar(progress.fraction)} {progress.text()}")
        else:
            log.info(
                "run %s: progress: %s", progress.run_id, progress.text(), extra=progress.fields()
            )

    def filter(self, record: logging.LogRecord) -> bool:
        return self._line.filter(record)

    def end(self) -> None:
        self._line.end()
