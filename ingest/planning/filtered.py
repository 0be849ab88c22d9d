"""filtered.csv: every listed object a filter dropped, with its reason (issue 13, point 2).

So a user can answer "why is key X not on the server?": listed = planned + filtered, key
by key (report.csv holds the planned ones). Written while listing, to a gzip file on local
disk (memory stays flat), then stored with the plan attempt's shards
(``runs/<run_id>/shards/<attempt>/filtered.csv.gz``) before run.json, which names it.
Cells are spreadsheet-safe (:mod:`ingest.state.csvcells`).
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import IO

from ingest.items import Item
from ingest.state.csvcells import cell

FILTERED_COLUMNS = ("bucket", "key", "size", "last_modified", "reason")


class FilteredWriter:
    """Appends dropped items, with their reason, to a gzip CSV file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._file: IO[str] = gzip.open(  # noqa: SIM115 - closed in close()
            path, "wt", compresslevel=6, encoding="utf-8", errors="backslashreplace", newline=""
        )
        self._csv = csv.writer(self._file)
        self._csv.writerow(FILTERED_COLUMNS)

    def add(self, item: Item, reason: str) -> None:
        self.rows += 1
        self._csv.writerow(
            [cell(item.bucket or ""), cell(item.key), item.size, item.last_modified or "", reason]
        )

    def close(self) -> None:
        self._file.close()
