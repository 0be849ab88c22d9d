"""A ledger read from local copies of its segments: the merged, newest-wins view.

Segments overlap (a key recorded again by a later run, with its new ETag); the view
merges them in sort-key order with a heap and keeps, for each key, the line of the newest
segment. With one segment (after a compaction) there is no heap at all.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path

from ingest.ledger.entries import Entry, line_sort_key
from ingest.ledger.lines import iter_blocks

_BLOCK_LINES = 4096


class LedgerView:
    """Local segment files, oldest first. Iterate as often as needed; each pass re-reads."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def lines(self) -> Iterator[tuple[str, str]]:
        """(sort key, segment line) of every recorded object, sorted, newest line per key."""
        if not self.files:
            return
        if len(self.files) == 1:
            yield from _keyed(self.files[0])
            return
        # The newest segment has the lowest tag, so it comes first among equal keys.
        n = len(self.files)
        tagged = [_tagged(_keyed(path), n - i) for i, path in enumerate(self.files)]
        last: str | None = None
        for key, _, line in heapq.merge(*tagged):
            if key != last:
                last = key
                yield key, line

    def blocks(self) -> Iterator[list[str]]:
        """The lines of :meth:`lines` (no keys), a block of them at a time. With one
        segment these are its decompressed blocks as they are: no per-line work at all."""
        if len(self.files) == 1:
            yield from iter_blocks(self.files[0])
            return
        block: list[str] = []
        for _, line in self.lines():
            block.append(line)
            if len(block) >= _BLOCK_LINES:
                yield block
                block = []
        if block:
            yield block

    def entries(self) -> Iterator[Entry]:
        for _, line in self.lines():
            yield Entry.from_line(line)


def _keyed(path: Path) -> Iterator[tuple[str, str]]:
    for block in iter_blocks(path):
        for line in block:
            bucket, key, _ = line.split("\t", 2)  # line_sort_key, inlined: the hot loop
            if "\\" in bucket or "\\" in key:
                yield line_sort_key(line), line
            else:
                yield f"{bucket}\0{key}", line


def _tagged(pairs: Iterator[tuple[str, str]], tag: int) -> Iterator[tuple[str, int, str]]:
    for key, line in pairs:
        yield key, tag, line
