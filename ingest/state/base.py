"""The state store interface and the run layout (DESIGN.md, "State store layout").

Paths are relative, ``/``-separated, below the store's root URI. Writes that could race
(two pods on one index, a restarted coordinator) use :meth:`StateStore.create` (create if
absent) or :meth:`StateStore.replace` (compare-and-swap on the ETag a read returned), so a
zombie cannot overwrite newer progress: the loser gets :class:`ingest.errors.StateConflict`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import IO, Protocol


@dataclasses.dataclass(frozen=True)
class Blob:
    """Bytes read from the store with the ETag to pass to :meth:`StateStore.replace`."""

    data: bytes
    etag: str


class StateStore(Protocol):
    """Bytes under relative paths, with conditional writes. Use as ``async with``."""

    uri: str

    async def get(self, path: str) -> Blob | None:
        """The object, or None when it does not exist."""
        ...

    async def put(self, path: str, data: bytes) -> str:
        """Write unconditionally (for objects only one writer ever makes); returns the ETag."""
        ...

    async def put_file(self, path: str, f: IO[bytes]) -> str:
        """Write unconditionally the bytes of ``f`` from its position to its end, streamed
        (a report of millions of rows never sits in memory); returns the ETag."""
        ...

    async def create(self, path: str, data: bytes) -> str:
        """Write only if absent; StateConflict when it exists. Returns the ETag."""
        ...

    async def replace(self, path: str, data: bytes, etag: str) -> str:
        """Write only if the current ETag is ``etag``; StateConflict otherwise."""
        ...

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Paths below ``prefix``, sorted."""
        ...

    async def delete(self, path: str) -> None:
        """Remove the object; no error when absent."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> StateStore: ...

    async def __aexit__(self, *exc: object) -> None: ...


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """Where each piece of run ``run_id`` lives in the store."""

    run_id: str

    @property
    def root(self) -> str:
        return f"runs/{self.run_id}"

    @property
    def run_json(self) -> str:
        return f"{self.root}/run.json"

    def shard(self, index: int, attempt: str = "") -> str:
        """Shard ``index`` of plan attempt ``attempt`` (each planner writes its own; "" is
        the layout of plans made before attempts)."""
        if attempt:
            return f"{self.root}/shards/{attempt}/{index:05d}.jsonl.gz"
        return f"{self.root}/shards/{index:05d}.jsonl.gz"

    def filtered_csv(self, attempt: str) -> str:
        """The listed objects that plan attempt ``attempt`` filtered out, with reasons."""
        return f"{self.root}/shards/{attempt}/filtered.csv.gz"

    def checkpoint(self, index: int) -> str:
        return f"{self.root}/checkpoints/{index:05d}.json"

    def results_dir(self, index: int) -> str:
        return f"{self.root}/results/{index:05d}"

    def results_part(self, index: int, part: int) -> str:
        return f"{self.results_dir(index)}/part-{part:06d}.jsonl.gz"

    def intents_dir(self, index: int) -> str:
        """Shard ``index``'s intent records: what a worker sent and may not have recorded."""
        return f"{self.root}/intents/{index:05d}"

    def intent(self, index: int, worker_id: str, seq: int) -> str:
        return f"{self.intents_dir(index)}/{worker_id}-{seq:08d}.json"

    @property
    def report_json(self) -> str:
        return f"{self.root}/report.json"

    @property
    def report_csv(self) -> str:
        return f"{self.root}/report.csv"
