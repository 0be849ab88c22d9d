"""A failed worker's cause, read back from its log file for the run's summary.

Worker logs are text or JSON lines (``ingest.logs``); a worker's own fatal message is its
``aion-ingest: ...`` line. The last of these is the line a person needs first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_TAIL_BYTES = 64 * 1024
_TEXT_ERROR = re.compile(r"^\d\d:\d\d:\d\d (?:error|critical)\s+[\w.]+: (.*)$")


def _error_of(line: str) -> str | None:
    line = line.strip()
    if line.startswith("aion-ingest: "):
        return line[len("aion-ingest: ") :]
    if line.startswith("{"):
        try:
            doc = json.loads(line)
        except ValueError:
            return None
        if isinstance(doc, dict) and doc.get("level") in ("error", "critical"):
            return str(doc.get("msg", ""))
        return None
    found = _TEXT_ERROR.match(line)
    return found.group(1) if found else None


def last_error_line(path: Path) -> str | None:
    """The last error in the log at ``path`` (its tail only), or None when it has none."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - _TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        error = _error_of(line)
        if error:
            return error
    return None
