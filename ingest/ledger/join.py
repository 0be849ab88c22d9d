"""The anti-join: each listed object is *new*, *changed* or *unchanged* against the ledger.

A sort-merge: the listing and the ledger's merged view are walked together in sort-key
order, so memory stays flat however big either is (no dict of millions of keys). Listings
mostly arrive sorted already (S3 lists in key order; manifests are usually written in
order), so :class:`AntiJoin` classifies every item that comes in order at once, in the
same pass as the listing; an item out of order (a key lower than the last one seen) is
set aside in an external sort and classified at the end by a second walk of the ledger.

*Changed* means: the ledger holds the same bucket and key with another size or ETag. A
version id alone does not make a change (a new version with the same bytes has the same
ETag). Both sides' ETags are compared as listed; a source without ETags compares sizes.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from ingest.items import Item
from ingest.ledger.entries import line_size_etag, line_sort_key, sort_key
from ingest.ledger.sorting import DEFAULT_CHUNK_ROWS, ExternalSorter
from ingest.ledger.view import LedgerView
from ingest.state.records import item_from_json, item_line

ChangedPolicy = Literal["upload", "skip"]
CHANGED_POLICIES: tuple[ChangedPolicy, ...] = ("upload", "skip")


class Status(enum.StrEnum):
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


_INDEX = {Status.NEW: 0, Status.CHANGED: 1, Status.UNCHANGED: 2}


class AntiJoin:
    """Push the filtered listing through :meth:`add`, then drain :meth:`deferred`.

    ``add`` answers at once for an item that comes in order and None for one it set
    aside; ``deferred`` yields the set-aside items with their status, in key order.
    ``counts`` holds every item's status once both are done.
    """

    def __init__(
        self,
        view: LedgerView,
        workdir: Path,
        *,
        changed: ChangedPolicy = "upload",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        if changed not in CHANGED_POLICIES:
            raise ValueError(f"changed must be one of {CHANGED_POLICIES}, not {changed!r}")
        self.view = view
        self.changed = changed
        self.planned = frozenset(
            (Status.NEW, Status.CHANGED) if changed == "upload" else (Status.NEW,)
        )
        """The statuses that go into the shards."""
        self._counts = [0, 0, 0]  # by _INDEX; a list, not a dict: enum hashing is slow
        self._workdir = workdir
        self._chunk_rows = chunk_rows
        self._last = ""
        self._walk = _LedgerWalk(view)
        self._sorter: ExternalSorter | None = None

    def is_planned(self, status: Status) -> bool:
        """Whether an item with ``status`` goes into the shards."""
        return status in self.planned

    @property
    def counts(self) -> dict[Status, int]:
        """How many items had each status so far."""
        return dict(zip(Status, self._counts, strict=True))

    @property
    def deferred_count(self) -> int:
        return self._sorter.count if self._sorter is not None else 0

    def add(self, item: Item) -> Status | None:
        bucket = item.bucket or ""
        key = f"{bucket}\0{item.key}"
        if key < self._last:
            if self._sorter is None:
                self._sorter = ExternalSorter(self._workdir, chunk_rows=self._chunk_rows)
            self._sorter.add(key, item_line(item))
            return None
        self._last = key
        size, etag = item.size, item.etag
        status = self._walk.status(key, f"{bucket}\t{item.key}\t{size}\t{etag or ''}\t", size, etag)
        self._counts[_INDEX[status]] += 1
        return status

    def deferred(self) -> Iterator[tuple[Item, Status]]:
        """The items :meth:`add` set aside, sorted, each with its status."""
        if self._sorter is None:
            return
        sorter, self._sorter = self._sorter, None
        walk = _LedgerWalk(self.view)
        for key, line in sorter.sorted():
            item = item_from_json(json.loads(line))
            size, etag = item.size, item.etag
            probe = f"{item.bucket or ''}\t{item.key}\t{size}\t{etag or ''}\t"
            status = walk.status(key, probe, size, etag)
            self._counts[_INDEX[status]] += 1
            yield item, status


class _LedgerWalk:
    """The ledger's lines in key order, stepped forward to each key asked about.

    Each listed object is asked about with its *probe*, ``bucket<TAB>key<TAB>size<TAB>
    etag<TAB>``: the first fields of the ledger line that would make it *unchanged*. The
    ledger's next line starting with the probe is the common case (a recurring import
    lists mostly what it sent before), answered by one ``startswith``: no sort key is
    built for that line, nor any field split. A line's sort key is built only when the
    probe does not match (a new, changed or deleted object, or a field with escapes).
    """

    def __init__(self, view: LedgerView) -> None:
        self._blocks = view.blocks()
        self._block: list[str] = []
        self._at = 0  # the next line: self._block[self._at]
        self._line: str | None = None  # that line (None: the ledger is done)
        self._line_key: str | None = None  # its sort key, once built
        self._done_key: str | None = None  # the last line stepped past for a match
        self._done_line = ""
        self._next()

    def _next(self) -> None:
        self._line_key = None
        while self._at >= len(self._block):
            block = next(self._blocks, None)
            if block is None:
                self._line = None
                return
            self._block, self._at = block, 0
        self._line = self._block[self._at]
        self._at += 1

    def status(self, key: str, probe: str, size: int, etag: str | None) -> Status:
        """The status of an object: its sort key, its probe (``bucket<TAB>key<TAB>size<TAB>
        etag<TAB>``, unescaped), size and ETag; keys must not decrease from call to call."""
        line = self._line
        # A match counts only for a probe whose fields need no escape in a ledger line
        # (no backslash, tab, newline or carriage return in one): then a line starting
        # with it holds exactly those fields.
        if (
            line is not None
            and line.startswith(probe)
            and "\\" not in probe  # _plain(probe), inlined: the hot path
            and "\n" not in probe
            and "\r" not in probe
            and probe.count("\t") == 4
        ):
            self._done_key, self._done_line = key, line
            self._next()
            return Status.UNCHANGED
        if key == self._done_key:  # a key listed twice: its line is behind us
            return _compare(self._done_line, size, etag)
        while line is not None:
            line_key = self._line_key
            if line_key is None:
                line_key = self._line_key = line_sort_key(line)
            if line_key >= key:
                if line_key != key:
                    return Status.NEW
                self._done_key, self._done_line = key, line
                self._next()
                return _compare(line, size, etag)
            self._next()
            line = self._line
        return Status.NEW


def _compare(line: str, size: int, etag: str | None) -> Status:
    """UNCHANGED or CHANGED: ``line`` (of the same bucket and key) against size and ETag.

    A version id alone does not make a change (a new version with the same bytes has the
    same ETag); a source without ETags compares sizes."""
    known_size, known_etag = line_size_etag(line)
    if known_size == size and known_etag == (etag or None):  # "" and None: no ETag
        return Status.UNCHANGED
    return Status.CHANGED


def classify(
    listing: Iterable[Item],
    view: LedgerView,
    workdir: Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[tuple[Item, Status]]:
    """Every item of ``listing`` with its status: those in order at once, the others
    (sorted) at the end. ``workdir`` holds the external sort's files, if any."""
    join = AntiJoin(view, workdir, chunk_rows=chunk_rows)
    for item in listing:
        status = join.add(item)
        if status is not None:
            yield item, status
    yield from join.deferred()


__all__ = ["CHANGED_POLICIES", "AntiJoin", "ChangedPolicy", "Status", "classify", "sort_key"]
