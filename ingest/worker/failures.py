"""An item's failure as a machine-readable code (:class:`~ingest.items.FailureCode`).

Errors are classified where they arise (the API edge, the S3 edge, a source); this reads
what they carry (exception type, HTTP status, the S3 or source code) and names the
failure in the one fixed vocabulary, so a script can count "gone" against "refused"
without parsing reasons. The code goes on the transfer (``Transfer.finish``), and from
there to the results, the report, ``--retry-failed`` and the metrics' ``reason`` label.
"""

from __future__ import annotations

from ingest.api.errors import StorageRejected
from ingest.api.files import SizeMismatch
from ingest.errors import ItemRejected, SourceItemError
from ingest.items import FailureCode

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
