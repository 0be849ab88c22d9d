"""Accounting: one transfer record per item, and the counters everyone else reads.

As in rclone's ``fs/accounting``: work on an item opens a :class:`Transfer` and closes it
in a ``finally``, whatever happens. Closing a transfer that has an outcome counts it
(objects and bytes by outcome) and hands its :class:`ItemResult` to the sink (the results
writer); closing one without an outcome (cancelled, a fatal error, SIGTERM) only takes it
out of flight, so the item is re-sent on restart. Progress lines, Prometheus (a collector
reading :meth:`Accounting.snapshot` at scrape time) and the results all read from here
instead of keeping counters of their own, so they cannot disagree.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
from collections.abc import Callable, Iterator

from ingest.items import FailureCode, Item, ItemResult, Outcome, PendingId
from ingest.logs import redact
from ingest.streams import ByteStream
from ingest.worker.clock import SYSTEM_CLOCK, Clock
from ingest.worker.tapped import TappedStream


@dataclasses.dataclass(slots=True)
class Transfer:
    """What is known about one item while it is being worked on."""

    ordinal: int
    key: str
    size: int
    started_at: float
    route: str | None = None
    attempts: int = 0
    bytes_sent: int = 0
    outcome: Outcome | None = None
    image_id: str | None = None
    reason: str | None = None
    http_status: int | None = None
    code: str | None = None
    pending: PendingId | None = None

    def finish(
        self,
        outcome: Outcome,
        *,
        image_id: str | None = None,
        reason: str | None = None,
        http_status: int | None = None,
        attempts: int | None = None,
        code: FailureCode | None = None,
        pending: PendingId | None = None,
    ) -> None:
        """Record the outcome (the last call wins until the transfer is closed).

        The reason may be a server's text: registered secrets are redacted from it here,
        before it reaches a results part, the report or a summary. A ``failed`` outcome
        needs its :class:`FailureCode`: the report, ``--retry-failed`` and the metrics read
        nothing else (a failure path without one is a bug, caught here)."""
        if outcome is Outcome.FAILED and code is None:
            raise ValueError(f"ordinal {self.ordinal} failed without a FailureCode")
        self.outcome = outcome
        self.pending = pending
        self.image_id = image_id
        self.reason = None if reason is None else redact(reason)
        self.http_status = http_status
        self.code = None if code is None else str(code)
        if attempts is not None:
            self.attempts = attempts

    def result(self) -> ItemResult:
        if self.outcome is None:
            raise ValueError(f"transfer of ordinal {self.ordinal} has no outcome yet")
        return ItemResult(
            ordinal=self.ordinal,
            key=self.key,
            size=self.size,
            outcome=self.outcome,
            image_id=self.image_id,
            reason=self.reason,
            http_status=self.http_status,
            attempts=self.attempts,
            code=self.code,
            pending=self.pending,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """The counters at one instant."""

    at: float
    total_objects: int
    total_bytes: int
    objects: int  # with an outcome, including those done before a restart
    bytes: int
    resumed_objects: int
    resumed_bytes: int
    by_outcome: dict[str, int]
    bytes_by_outcome: dict[str, int]
    in_flight: int
    bytes_in_flight: int  # sent so far by transfers still open


class Accounting:
    """Counters of one worker, fed by transfer records."""

    def __init__(
        self,
        total_objects: int = 0,
        total_bytes: int = 0,
        *,
        sink: Callable[[ItemResult], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.total_objects = total_objects
        self.total_bytes = total_bytes
        self.sink = sink
        self.clock = clock
        self.objects: collections.Counter[Outcome] = collections.Counter()
        self.bytes: collections.Counter[Outcome] = collections.Counter()
        self.resumed_objects = 0
        self.resumed_bytes = 0
        self.abandoned = 0  # closed without an outcome: will be re-sent
        self.in_flight: dict[int, Transfer] = {}
        # For metrics (ingest.metrics reads them at scrape time): by outcome and route,
        # failures by FailureCode (bounded label values), and when the last outcome was counted.
        self.by_route: collections.Counter[tuple[str, str]] = collections.Counter()
        self.bytes_by_route: collections.Counter[tuple[str, str]] = collections.Counter()
        self.failures: collections.Counter[str] = collections.Counter()
        self.last_progress_at: float | None = None

    def resumed(self, objects: int, nbytes: int) -> None:
        """Items a previous run of this shard finished (skipped by the checkpoint)."""
        self.resumed_objects += objects
        self.resumed_bytes += nbytes

    def open(self, ordinal: int, item: Item) -> Transfer:
        if ordinal in self.in_flight:
            raise ValueError(f"ordinal {ordinal} is already in flight")
        t = Transfer(ordinal, item.key, item.size, started_at=self.clock.monotonic())
        self.in_flight[ordinal] = t
        return t

    def close(self, transfer: Transfer) -> None:
        """Take ``transfer`` out of flight; count and emit its result when it has one."""
        if self.in_flight.pop(transfer.ordinal, None) is None:
            return  # closed already
        if transfer.outcome is None:
            self.abandoned += 1
            return
        self.objects[transfer.outcome] += 1
        self.bytes[transfer.outcome] += transfer.size
        pair = (transfer.outcome.value, transfer.route or "none")
        self.by_route[pair] += 1
        self.bytes_by_route[pair] += transfer.size
        if transfer.outcome is Outcome.FAILED and transfer.code:  # finish() saw to the code
            self.failures[transfer.code] += 1
        self.last_progress_at = self.clock.monotonic()
        if self.sink is not None:
            self.sink(transfer.result())

    @contextlib.contextmanager
    def transfer(self, ordinal: int, item: Item) -> Iterator[Transfer]:
        """``with acct.transfer(o, item) as t: ... t.finish(...)``: closed whatever happens."""
        t = self.open(ordinal, item)
        try:
            yield t
        finally:
            self.close(t)

    def record(self, ordinal: int, item: Item, outcome: Outcome, **fields: object) -> None:
        """Open, finish and close at once (outcomes decided without any work)."""
        with self.transfer(ordinal, item) as t:
            t.finish(outcome, **fields)  # type: ignore[arg-type]

    def counting(self, stream: ByteStream, transfer: Transfer) -> ByteStream:
        """``stream`` adding each chunk's size to ``transfer.bytes_sent`` as it passes."""

        async def count(n: int) -> None:
            transfer.bytes_sent += n

        return TappedStream(stream, count)

    def snapshot(self) -> Snapshot:
        done = sum(self.objects.values())
        done_bytes = sum(self.bytes.values())
        return Snapshot(
            at=self.clock.monotonic(),
            total_objects=self.total_objects,
            total_bytes=self.total_bytes,
            objects=done + self.resumed_objects,
            bytes=done_bytes + self.resumed_bytes,
            resumed_objects=self.resumed_objects,
            resumed_bytes=self.resumed_bytes,
            by_outcome={o.value: n for o, n in self.objects.items()},
            bytes_by_outcome={o.value: n for o, n in self.bytes.items()},
            in_flight=len(self.in_flight),
            bytes_in_flight=sum(t.bytes_sent for t in self.in_flight.values()),
        )
