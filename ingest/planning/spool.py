"""The spool: the filtered listing on local disk, so planning memory stays flat.

Pass 1 writes one line per kept item, ``<size>\\t<shard line>`` (the shard line is
:func:`ingest.state.records.item_line`), gzip level 1 (fast; a million items take ~20 MB).
Pass 2 reads the size without parsing the JSON and copies the JSON bytes straight into
the shard files: no item is decoded twice, and no per-row object is built.
The statistics the summary needs are gathered on the way.
"""

from __future__ import annotations

import bisect
import dataclasses
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ingest.items import Item
from ingest.state.records import item_line, shard_compressor

# Size histogram buckets (upper bounds, exclusive). 100 MiB is the API's streaming limit:
# above it files take the presigned path.
_KIB, _MIB, _GIB = 1024, 1024**2, 1024**3
HISTOGRAM_BOUNDS = (64 * _KIB, _MIB, 10 * _MIB, 100 * _MIB, _GIB)
HISTOGRAM_LABELS = ("<64KiB", "64KiB-1MiB", "1-10MiB", "10-100MiB", "100MiB-1GiB", ">=1GiB")
_FLUSH_LINES = 2048


@dataclasses.dataclass
class SpoolStats:
    """What pass 1 learned about the kept items."""

    items: int = 0
    bytes: int = 0
    histogram: list[int] = dataclasses.field(default_factory=lambda: [0] * len(HISTOGRAM_LABELS))
    half_max_cost: float = 0.0  # the largest item cost not above half an allowance
    max_cost: float = 0.0

    def histogram_dict(self) -> dict[str, int]:
        return dict(zip(HISTOGRAM_LABELS, self.histogram, strict=True))


class SpoolWriter:
    """Appends kept items to the spool file, counting as it goes."""

    def __init__(self, path: Path, per_item_cost: float, allowance: float) -> None:
        self.path = path
        self.stats = SpoolStats()
        self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._zip = shard_compressor()
        self._lines: list[str] = []
        self._per_item = per_item_cost
        self._half = allowance / 2

    def add(self, item: Item) -> None:
        size = item.size
        stats = self.stats
        stats.items += 1
        stats.bytes += size
        stats.histogram[bisect.bisect_right(HISTOGRAM_BOUNDS, size)] += 1
        cost = size + self._per_item
        if cost > stats.max_cost:
            stats.max_cost = cost
        if stats.half_max_cost < cost <= self._half:
            stats.half_max_cost = cost
        self._lines.append(f"{size}\t{item_line(item)}\n")
        if len(self._lines) >= _FLUSH_LINES:
            self._flush()

    def _flush(self) -> None:
        # surrogatepass: a local file name with bytes that are not UTF-8 arrives as lone
        # surrogates (os.fsdecode); they are kept, and json.loads reads them back.
        data = "".join(self._lines).encode("utf-8", "surrogatepass")
        self._file.write(self._zip.compress(data))
        self._lines.clear()

    def close(self) -> None:
        self._flush()
        self._file.write(self._zip.flush())
        self._file.close()


def read_spool(path: Path) -> Iterator[tuple[int, bytes]]:
    """(size, JSON line with its newline) of every spooled item, in listing order."""
    with gzip.open(path, "rb") as f:
        for line in f:
            tab = line.index(b"\t")
            yield int(line[:tab]), line[tab + 1 :]
