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
import functools
import json
import operator
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from ingest.items import Item, Listed, PlainBatch, PlainRow, item_of
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
    """Push the filtered listing through :meth:`add` (or :meth:`add_plain`, or in lists
    through :meth:`add_batch`: the planner's way), then drain :meth:`deferred`.

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
        return self._add(item.bucket or "", item.key, item.size, item.etag, item)

    def add_batch(self, rows: Iterable[Listed]) -> list[Listed]:
        """:meth:`add` (or :meth:`add_plain`) of each row in order: the rows that go into
        the shards (those set aside come later, from :meth:`deferred`).

        The hot loop of planning with a ledger. A plain row that the ledger's next line
        holds unchanged (a recurring import's common case) costs one ``startswith`` of its
        probe and no call; any other row goes through :meth:`add` or :meth:`add_plain`.
        """
        if isinstance(rows, PlainBatch):
            return self._add_tabbed(rows)
        return self._add_rows(rows)

    def _add_rows(self, rows: Iterable[Listed]) -> list[Listed]:
        out: list[Listed] = []
        walk, planned = self._walk, self.planned
        last, unchanged, moved = self._last, 0, False
        # The walk's state in locals for the common case; handed back before any other row.
        line, block, at = walk.line, walk.block, walk.at
        done_line = ""
        for row in rows:
            if isinstance(row, tuple) and line is not None:
                bucket, name, size, etag = row
                key = f"{bucket}\0{name}"
                if key >= last:
                    probe = f"{bucket}\t{name}\t{size}\t{etag}\t"
                    if (
                        line.startswith(probe)
                        and "\\" not in probe  # _LedgerWalk.status's check, inlined
                        and "\n" not in probe
                        and "\r" not in probe
                        and probe.count("\t") == 4
                    ):
                        last, done_line, moved = key, line, True
                        if at < len(block):  # walk.step(), inlined
                            line = block[at]
                            at += 1
                        else:
                            walk.at = at
                            walk.step()
                            line, block, at = walk.line, walk.block, walk.at
                        unchanged += 1
                        continue
            self._last, walk.line, walk.block, walk.at = last, line, block, at
            if moved:  # the last row matched: its key is ``last``
                walk.done_key, walk.done_line, walk.line_key, moved = last, done_line, None, False
            status = self.add_plain(row) if isinstance(row, tuple) else self.add(row)
            last, line, block, at = self._last, walk.line, walk.block, walk.at
            if status in planned:  # None (set aside) is not
                out.append(row)
        self._last, walk.line, walk.block, walk.at = last, line, block, at
        if moved:
            walk.done_key, walk.done_line, walk.line_key = last, done_line, None
        self._counts[_INDEX[Status.UNCHANGED]] += unchanged
        return out

    def _add_tabbed(self, rows: PlainBatch) -> list[Listed]:
        """:meth:`add_batch` of a PlainBatch: each row's text is its probe as it is.

        Rows whose texts the ledger's next lines start with, one for one, and that come in
        order, are unchanged: a window of them is tested at once, by ``map`` (C, no Python
        step a row). The order test compares texts too: for rows of plain fields (no
        character up to TAB in bucket or key) ``text >= floor`` holds exactly when the
        row's sort key is at least the last one's (:func:`_floor`). The first row that does
        not match goes through :meth:`add_plain`; when the last key has no floor, or the
        ledger is done, the rest go the general way. The window shrinks after a miss (so a
        run of new rows costs little more) and grows while rows match.
        """
        out: list[Listed] = []
        walk, planned, tabbed = self._walk, self.planned, rows.tabbed
        i, end, window = 0, len(tabbed), _WINDOW  # rows before i are done
        while i < end:
            floor, line = _floor(self._last), walk.line
            if floor is None or line is None:
                return out + self._add_rows(rows[i:])  # (a slice is a plain list)
            block, at = walk.block, walk.at - 1  # line is block[at]
            k = min(end - i, len(block) - at, window)
            texts = tabbed[i : i + k]
            hits = list(map(str.startswith, block[at : at + k], texts))
            m = hits.index(False) if False in hits else k  # rows matched, in a row
            if m and not (texts[0] >= floor and all(map(operator.le, texts, texts[1:m]))):
                ordered = list(map(operator.ge, texts[:m], [floor, *texts[: m - 1]]))
                m = ordered.index(False)  # (rare: a row out of order or listed twice)
            window = min(2 * window, _WINDOW) if m == k else max(2 * m, 8)
            if m:  # rows i .. i+m-1 are unchanged; the walk steps past their lines
                self._counts[_INDEX[Status.UNCHANGED]] += m
                i += m
                walk.done_line, walk.at = block[at + m - 1], at + m
                self._last = walk.done_key = f"{rows[i - 1][0]}\0{rows[i - 1][1]}"
                walk.step()
                if m == k:
                    continue
            if walk.line is not None:  # row i did not match: the general way
                row = rows[i]
                if self.add_plain(row) in planned:  # None (set aside) is not
                    out.append(row)
                i += 1
        return out

    def add_plain(self, row: PlainRow) -> Status | None:
        """:meth:`add` of a plain listed row, ``(bucket, key, size, etag)``: no Item is made
        unless the row is set aside (out of order)."""
        bucket, key, size, etag = row
        return self._add(bucket, key, size, etag, row)

    def _add(
        self, bucket: str, name: str, size: int, etag: str | None, row: Listed
    ) -> Status | None:
        key = f"{bucket}\0{name}"
        if key < self._last:
            if self._sorter is None:
                self._sorter = ExternalSorter(self._workdir, chunk_rows=self._chunk_rows)
            self._sorter.add(key, item_line(item_of(row)))
            return None
        self._last = key
        status = self._walk.status(key, f"{bucket}\t{name}\t{size}\t{etag or ''}\t", size, etag)
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

    __slots__ = ("at", "block", "blocks", "done_key", "done_line", "line", "line_key")

    def __init__(self, view: LedgerView) -> None:
        self.blocks = view.blocks()
        self.block: list[str] = []
        self.at = 0  # the next line: self.block[self.at]
        self.line: str | None = None  # that line (None: the ledger is done)
        self.line_key: str | None = None  # its sort key, once built
        self.done_key: str | None = None  # the last line stepped past for a match
        self.done_line = ""
        self.step()

    def step(self) -> None:
        self.line_key = None
        while self.at >= len(self.block):
            block = next(self.blocks, None)
            if block is None:
                self.line = None
                return
            self.block, self.at = block, 0
        self.line = self.block[self.at]
        self.at += 1

    def status(self, key: str, probe: str, size: int, etag: str | None) -> Status:
        """The status of an object: its sort key, its probe (``bucket<TAB>key<TAB>size<TAB>
        etag<TAB>``, unescaped), size and ETag; keys must not decrease from call to call."""
        line = self.line
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
            self.done_key, self.done_line = key, line
            self.step()
            return Status.UNCHANGED
        if key == self.done_key:  # a key listed twice: its line is behind us
            return _compare(self.done_line, size, etag)
        while line is not None:
            line_key = self.line_key
            if line_key is None:
                line_key = self.line_key = line_sort_key(line)
            if line_key >= key:
                if line_key != key:
                    return Status.NEW
                self.done_key, self.done_line = key, line
                self.step()
                return _compare(line, size, etag)
            self.step()
            line = self.line
        return Status.NEW


_WINDOW = 256  # rows AntiJoin._add_tabbed tests at once, at most

_LOW = re.compile("[\x00-\t]")  # characters that sort below a plain field's separator


@functools.lru_cache(maxsize=1)  # asked once a window, mostly about the same key
def _floor(last: str) -> str | None:
    """The text a PlainBatch row's text must be at least to come in order after the sort
    key ``last`` (``bucket\\0key``), or None when ``last`` has other characters up to TAB
    than its one separator (then texts do not order as sort keys do).

    ``bucket<TAB>key<TAB>`` orders against a plain row's ``bucket<TAB>key<TAB>size...``
    as ``(bucket, key)`` pairs do, equal pairs included (the row's text is longer), when
    no field holds a character at or below TAB: both separators sort below every field
    character."""
    if not last:
        return ""
    if len(_LOW.findall(last)) != 1:
        return None
    return last.replace("\0", "\t") + "\t"


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
