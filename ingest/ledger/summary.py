"""What a ledger holds, for people: the summary line and the key → image id export.

Both read the merged view once (a scan: about a minute for 10M entries, see bench/); the
manifest alone cannot count objects, because a key recorded by two runs sits in two
segments until a compaction.
"""

from __future__ import annotations

import csv
import dataclasses
from typing import Any, TextIO

from ingest.ledger.manifest import Manifest
from ingest.ledger.view import LedgerView

EXPORT_COLUMNS = (
    "bucket",
    "key",
    "image_id",
    "size",
    "etag",
    "version_id",
    "run_id",
    "recorded_at",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclasses.dataclass(frozen=True)
class LedgerSummary:
    name: str
    objects: int
    bytes: int
    runs: int
    last_run: str | None
    last_run_at: str | None
    segments: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def text(self) -> str:
        last = f"{self.last_run} at {self.last_run_at}" if self.last_run else "none"
        return (
            f"ledger {self.name}: {self.objects:,} objects, {self.bytes:,} bytes, "
            f"{self.runs:,} runs merged, last run {last} ({self.segments} segments)"
        )


def summarize(manifest: Manifest, view: LedgerView) -> LedgerSummary:
    objects = total = 0
    for _, line in view.lines():  # the size field alone: no Entry built
        objects += 1
        total += int(line.split("\t", 3)[2])
    last = manifest.runs[-1] if manifest.runs else None
    return LedgerSummary(
        name=manifest.name,
        objects=objects,
        bytes=total,
        runs=len({r.run_id.split("+")[0] for r in manifest.runs}),  # "RUN+n": merged again
        last_run=last.run_id.split("+")[0] if last else None,
        last_run_at=last.at if last else None,
        segments=len(manifest.segments),
    )


def spreadsheet_safe(cell: str) -> str:
    """``cell`` with a leading ``'`` when a spreadsheet would read it as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def export_csv(view: LedgerView, out: TextIO) -> int:
    """One row per recorded object, in key order; how many rows."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    rows = 0
    for e in view.entries():
        writer.writerow(
            [
                spreadsheet_safe(e.bucket or ""),
                spreadsheet_safe(e.key),
                spreadsheet_safe(e.image_id or ""),
                e.size,
                spreadsheet_safe(e.etag or ""),
                spreadsheet_safe(e.version_id or ""),
                e.run_id,
                e.time,
            ]
        )
        rows += 1
    return rows
