"""An item's failure as a machine-readable code (:class:`~ingest.items.FailureCode`).

Errors are classified where they arise (the API edge, the S3 edge, a source); this reads
what they carry (exception type, HTTP status, the S3 or source code) and names the
failure in the report's fixed vocabulary, so a script can count "gone" against "refused"
without parsing reasons. :func:`failure_reason` gives the metrics' fixed words (bounded
label values; to become the same vocabulary as the codes).
"""

from __future__ import annotations

from ingest.api.errors import StorageRejected
from ingest.api.files import SizeMismatch
from ingest.errors import ItemRejected, SourceItemError
from ingest.items import FailureCode

# The metrics' words for failures (a public interface, bounded label values): metrics/names.py.
from ingest.metrics.names import FAILURE_REASONS as FAILURE_REASONS

_S3_GONE = {"NoSuchKey", "NoSuchVersion"}
_S3_CHANGED = {"PreconditionFailed"}
_SOURCE_CODES = {c.value for c in FailureCode if c.value.startswith("source_")}


def failure_code(exc: ItemRejected | SourceItemError) -> FailureCode:
    """The code of an item-level error."""
    if isinstance(exc, StorageRejected):
        return FailureCode.STORAGE_REJECTED
    if isinstance(exc, ItemRejected):
        if exc.status == 413:
            return FailureCode.TOO_LARGE
        if exc.status == 415:
            return FailureCode.UNSUPPORTED_TYPE
        return FailureCode.REJECTED
    if isinstance(exc, SizeMismatch):
        return FailureCode.SOURCE_CHANGED
    if exc.code in _SOURCE_CODES:  # a source that named it (the local folder)
        return FailureCode(exc.code)
    if exc.code in _S3_GONE or exc.status == 404:
        return FailureCode.SOURCE_GONE
    if exc.code in _S3_CHANGED or exc.status == 412:
        return FailureCode.SOURCE_CHANGED
    return FailureCode.SOURCE_UNREADABLE


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
