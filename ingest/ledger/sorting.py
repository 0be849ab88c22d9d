"""An external sort of (sort key, line) pairs: bounded memory however many there are.

Pairs are buffered up to ``chunk_rows``, sorted (stably: equal keys keep their order of
arrival) and written as one sorted run file; :meth:`ExternalSorter.sorted` merges the runs
with a heap. Input that arrives in order is cheap: a chunk whose pairs are in order and
follow the previous chunk joins the same run instead of starting a new one, so a sorted
input makes exactly one run and no heap. Lines must not hold a newline.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path

from ingest.ledger.entries import escape, unescape
from ingest.ledger.lines import LineWriter, iter_blocks

DEFAULT_CHUNK_ROWS = 100_000
_first = itemgetter(0)


class ExternalSorter:
    """Collect with :meth:`add`, then read back once with :meth:`sorted`."""

    def __init__(self, workdir: Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        self._dir = workdir
        self._chunk_rows = chunk_rows
        self._chunk: list[tuple[str, str]] = []
        self._in_order = True  # the current chunk is sorted so far
        self._runs: list[Path] = []
        self._writer: LineWriter | None = None
        self._run_last: str | None = None  # the last key of the open run
        self.count = 0

    @property
    def runs(self) -> int:
        """Sorted run files written so far (1 for an input that came in order)."""
        return len(self._runs)

    def add(self, key: str, line: str) -> None:
        chunk = self._chunk
        if self._in_order and chunk and key < chunk[-1][0]:
            self._in_order = False
        chunk.append((key, line))
        self.count += 1
        if len(chunk) >= self._chunk_rows:
            self._spill()

    def _spill(self) -> None:
        chunk = self._chunk
        if not chunk:
            return
        if not self._in_order:
            chunk.sort(key=_first)
        if self._writer is None or self._run_last is None or chunk[0][0] < self._run_last:
            self._close_run()
            path = self._dir / f"run-{len(self._runs):05d}.gz"
            self._runs.append(path)
            self._writer = LineWriter(path)
        writer = self._writer
        for key, line in chunk:
            writer.add(f"{escape(key)}\t{line}")
        self._run_last = chunk[-1][0]
        self._chunk = []
        self._in_order = True

    def _close_run(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def sorted(self) -> Iterator[tuple[str, str]]:
        """Every pair added, sorted by key; pairs with equal keys in order of arrival."""
        if not self._runs:  # everything fits in memory: no file at all
            chunk, self._chunk = self._chunk, []
            if not self._in_order:
                chunk.sort(key=_first)
            yield from chunk
            return
        self._spill()
        self._close_run()
        if len(self._runs) == 1:
            yield from _read_run(self._runs[0])
            return
        # Run i's pairs come before run j's (i < j) among equal keys: the merge is stable.
        tagged = [_tagged(_read_run(path), i) for i, path in enumerate(self._runs)]
        for key, _, line in heapq.merge(*tagged):
            yield key, line


def _read_run(path: Path) -> Iterator[tuple[str, str]]:
    for block in iter_blocks(path):
        for row in block:
            key, line = row.split("\t", 1)
            yield (unescape(key) if "\\" in key else key), line


def _tagged(pairs: Iterator[tuple[str, str]], tag: int) -> Iterator[tuple[str, int, str]]:
    for key, line in pairs:
        yield key, tag, line
