"""The formats of a shard's progress in the state store: its checkpoint, its results parts.

Written by the worker (:mod:`ingest.worker.checkpoint`, :mod:`ingest.worker.results`),
read by the report, ``status`` and the coordinator: so they live here, below all of them.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from collections.abc import Iterable
from typing import Any

from ingest.items import ItemResult
from ingest.state.base import RunLayout, StateStore

FORMAT_VERSION = 1
_PART_RE = re.compile(r"part-(\d+)\.jsonl\.gz$")


@dataclasses.dataclass
class Checkpoint:
    """Done ordinals of one shard: all below ``low``, plus ``done`` (all >= ``low``)."""

    low: int = 0
    done: set[int] = dataclasses.field(default_factory=set)
    worker_id: str = ""
    generation: int = 0
    updated_at: str = ""

    def is_done(self, ordinal: int) -> bool:
        return ordinal < self.low or ordinal in self.done

    def add(self, ordinal: int) -> None:
        """Mark ``ordinal`` done (idempotent); the low-water mark moves up when it can."""
        if ordinal < 0:
            raise ValueError(f"ordinal must be >= 0, got {ordinal}")
        if ordinal < self.low:
            return
        self.done.add(ordinal)
        self._compact()

    def add_all(self, ordinals: Iterable[int]) -> None:
        for ordinal in ordinals:
            if ordinal < 0:
                raise ValueError(f"ordinal must be >= 0, got {ordinal}")
            if ordinal >= self.low:
                self.done.add(ordinal)
        self._compact()

    def merge(self, other: Checkpoint) -> None:
        """Union of both progresses (ownership fields are left as they are)."""
        if other.low > self.low:
            self.done = {o for o in self.done if o >= other.low}
            self.low = other.low
        self.add_all(other.done)

    def count(self) -> int:
        """How many ordinals are done."""
        return self.low + len(self.done)

    def is_complete(self, total: int) -> bool:
        return self.low >= total

    def _compact(self) -> None:
        while self.low in self.done:
            self.done.discard(self.low)
            self.low += 1

    def runs(self) -> list[list[int]]:
        """``done`` as half-open runs ``[start, end)`` of consecutive ordinals."""
        out: list[list[int]] = []
        for o in sorted(self.done):
            if out and out[-1][1] == o:
                out[-1][1] = o + 1
            else:
                out.append([o, o + 1])
        return out

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "low": self.low,
            "done": self.runs(),
            "worker": self.worker_id,
            "gen": self.generation,
            "updated": self.updated_at,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        try:
            doc = json.loads(data)
            if doc.get("v") != FORMAT_VERSION:
                raise ValueError(f"unknown checkpoint format {doc.get('v')!r}")
            cp = cls(
                low=int(doc["low"]),
                worker_id=str(doc.get("worker", "")),
                generation=int(doc.get("gen", 0)),
                updated_at=str(doc.get("updated", "")),
            )
            for start, end in doc["done"]:
                cp.done.update(range(int(start), int(end)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable checkpoint: {exc}") from None
        cp._compact()
        return cp


def encode_part(results: list[ItemResult]) -> bytes:
    lines = "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in results)
    return gzip.compress(lines.encode(), compresslevel=6, mtime=0)


def decode_part(data: bytes) -> list[ItemResult]:
    text = gzip.decompress(data).decode()
    return [ItemResult.from_json(json.loads(line)) for line in text.splitlines() if line]


def part_number(path: str) -> int | None:
    m = _PART_RE.search(path)
    return int(m.group(1)) if m else None


async def list_parts(store: StateStore, layout: RunLayout, index: int) -> list[tuple[int, str]]:
    """(part number, path) of every results part of shard ``index``, in part order."""
    prefix = layout.results_dir(index) + "/"
    parts = []
    async for path in store.list(prefix):
        n = part_number(path)
        if n is not None:
            parts.append((n, path))
    return sorted(parts)


async def read_results(store: StateStore, layout: RunLayout, index: int) -> dict[int, ItemResult]:
    """Every stored outcome of shard ``index`` by ordinal; the latest part wins."""
    out: dict[int, ItemResult] = {}
    for _, path in await list_parts(store, layout, index):
        blob = await store.get(path)
        if blob is None:  # listed, then deleted: nothing to read
            continue
        for result in decode_part(blob.data):
            out[result.ordinal] = result
    return out
