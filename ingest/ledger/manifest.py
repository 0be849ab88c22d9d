"""The ledger's manifest: which segments make it up (oldest first) and which runs it holds.

It is the only object of a ledger that is ever rewritten, and only by compare-and-swap, so
a reader sees either the old list of segments or the new one, never a half. Segments it
does not name are either being written (a merge in flight) or left over (a crash, or
replaced by a compaction); :mod:`ingest.ledger.store` removes them after a grace period.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Segment:
    """One immutable sorted segment, stored as ``pages`` gzip pages of sorted lines."""

    id: str
    pages: int
    entries: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "pages": self.pages, "entries": self.entries}


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A run merged into the ledger: its id, when, and how many objects it recorded."""

    run_id: str
    at: str
    recorded: int

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run_id, "at": self.at, "recorded": self.recorded}


@dataclasses.dataclass(frozen=True)
class Retired:
    """A segment a compaction replaced; deleted once nobody can still be reading it."""

    id: str
    at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at}


@dataclasses.dataclass(frozen=True)
class Manifest:
    name: str
    segments: tuple[Segment, ...] = ()
    runs: tuple[RunRecord, ...] = ()
    retired: tuple[Retired, ...] = ()

    def has_run(self, run_id: str) -> bool:
        return any(r.run_id == run_id for r in self.runs)

    @property
    def live_ids(self) -> set[str]:
        return {s.id for s in self.segments}

    def encode(self) -> bytes:
        doc = {
            "v": FORMAT_VERSION,
            "name": self.name,
            "segments": [s.to_json() for s in self.segments],
            "runs": [r.to_json() for r in self.runs],
            "retired": [r.to_json() for r in self.retired],
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> Manifest:
        """ValueError naming ``where`` when the bytes are not a manifest of this version."""
        try:
            doc = json.loads(data)
            if doc.get("v") != FORMAT_VERSION:
                raise ValueError(f"unknown format {doc.get('v')!r}")
            return cls(
                name=str(doc["name"]),
                segments=tuple(
                    Segment(str(s["id"]), int(s["pages"]), int(s["entries"]))
                    for s in doc["segments"]
                ),
                runs=tuple(
                    RunRecord(str(r["run"]), str(r["at"]), int(r["recorded"])) for r in doc["runs"]
                ),
                retired=tuple(Retired(str(r["id"]), str(r["at"])) for r in doc["retired"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{where} is not a ledger manifest: {exc}") from None
