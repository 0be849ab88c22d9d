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
from ingest.ledger.entries import line_size_etag, sort_key
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
        self._counts = [0, 0, 0]  # by _INDEX; a list, not a dict: enum hashing is slow
        self._workdir = workdir
        self._chunk_rows = chunk_rows
        self._last = ""
        self._walk = _LedgerWalk(view)
        self._sorter: ExternalSorter | None = None

    def is_planned(self, status: Status) -> bool:
        """Whether an item with ``status`` goes into the shards."""
        return status is Status.NEW or (status is Status.CHANGED and self.changed == "upload")

    @property
    def counts(self) -> dict[Status, int]:
        """How many items had each status so far."""
        return dict(zip(Status, self._counts, strict=True))

    @property
    def deferred_count(self) -> int:
        return self._sorter.count if self._sorter is not None else 0

    def add(self, item: Item) -> Status | None:
        key = f"{item.bucket or ''}\0{item.key}"
        if key < self._last:
            if self._sorter is None:
                self._sorter = ExternalSorter(self._workdir, chunk_rows=self._chunk_rows)
            line = item_line(item)
            self._sorter.add(key, line)
            return None
        self._last = key
        status = self._walk.status(key, item.size, item.etag)
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
            status = walk.status(key, item.size, item.etag)
            self._counts[_INDEX[status]] += 1
            yield item, status


class _LedgerWalk:
    """The ledger's lines in key order, stepped forward to each key asked about."""

    def __init__(self, view: LedgerView) -> None:
        self._lines = view.lines()
        self._key: str | None = ""
        self._line = ""

    def status(self, key: str, size: int, etag: str | None) -> Status:
        """The status of (``key``, ``size``, ``etag``); keys must not decrease."""
        at = self._key
        if at is not None and at < key:
            for at, line in self._lines:
                if at >= key:
                    self._line = line
                    break
            else:
                at = None
            self._key = at
        if at != key:
            return Status.NEW
        line, etag = self._line, etag or ""
        # The fast path, for a line without escapes: its size and ETag fields start right
        # after "bucket<TAB>key<TAB>", which is as long as the sort key plus one.
        if (
            "\\" not in line
            and "\t" not in etag
            and line.startswith(f"{size}\t{etag}\t", len(key) + 1)
        ):
            return Status.UNCHANGED
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
