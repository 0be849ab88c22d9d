"""A failed item's reason as one of a few fixed words, for counting.

The report keeps each failure's full reason (the API's message, the S3 error); metrics
need a small fixed set instead (bounded label values, no keys, no free text). The order of
the tests below matters: an HTTP status says the most, then the source's own words.
"""

from __future__ import annotations

# The words are the metrics' label values (a public interface): metrics/names.py holds them.
from ingest.metrics.names import FAILURE_REASONS as FAILURE_REASONS


def failure_reason(reason: str | None, http_status: int | None) -> str:
    """The fixed word for a ``failed`` outcome's ``reason`` and ``http_status``."""
    if http_status is not None:
        if http_status == 413:
            return "too_large"
        if http_status == 415:
            return "unsupported_media"
        if http_status in (400, 422):
            return "invalid"
        return "server_error" if http_status >= 500 else "refused"
    text = (reason or "").lower()
    if "changed since planning" in text or "shrank while" in text:
        return "source_changed"
    if any(w in text for w in ("is gone", "archived", "access denied", "leaves the source")):
        return "source_missing"
    if "no per-file result" in text:
        return "no_result"
    if text:
        return "batch_rejection"
    return "other"
