"""The failure code of a result written before results carried one.

Results parts written by workers older than :class:`~ingest.items.FailureCode` hold a
``failed`` outcome with only a reason text and an HTTP status. :func:`code_from_reason`
gives such a row a code when it is read, so everything downstream (the report's grouping,
``run --retry-failed``'s final set) reads ``ItemResult.code`` alone. This is the only place
that looks at the reason text to classify a failure; rows written today carry the code the
worker chose where the failure happened, and this table is never consulted for them.

The table knows the texts those workers wrote (``worker/uploads.py``, the sources' and the
edges' messages). A text it does not know, with no status, counts as
``processing_failed``: a failure a retry may fix, as such rows were treated before.
"""

from __future__ import annotations

from ingest.items import FailureCode

_CODES = {c.value: c for c in FailureCode}

# (words in the reason, lower-cased) -> code; first match wins, before the HTTP status.
_WORDS: tuple[tuple[str, FailureCode], ...] = (
    ("storage refused", FailureCode.STORAGE_REJECTED),
    ("presigned url", FailureCode.STORAGE_REJECTED),
    ("no per-file result", FailureCode.NO_RESULT),
    ("changed since planning", FailureCode.SOURCE_CHANGED),
    ("changed during upload", FailureCode.SOURCE_CHANGED),
    ("shrank while", FailureCode.SOURCE_CHANGED),
    ("is gone", FailureCode.SOURCE_GONE),
    ("gone from the source", FailureCode.SOURCE_GONE),
    ("deleted since planning", FailureCode.SOURCE_GONE),
    ("leaves the source folder", FailureCode.SOURCE_UNREADABLE),
    ("not a regular file", FailureCode.SOURCE_UNREADABLE),
    ("cannot open", FailureCode.SOURCE_UNREADABLE),
    ("archived", FailureCode.SOURCE_UNREADABLE),
    ("access denied", FailureCode.SOURCE_UNREADABLE),
)
# The API's refusals inside a stream-batch answer (a 200: no status of their own).
_BATCH_REFUSALS = ("empty", "0 bytes", "does not match", "not a valid", "unsupported", "too large")


def code_from_reason(reason: str | None, http_status: int | None) -> FailureCode:
    """The code of an old ``failed`` row from its reason text and HTTP status."""
    text = (reason or "").strip().lower()
    if text in _CODES:  # a code written as the reason
        return _CODES[text]
    for words, code in _WORDS:
        if words in text:
            return code
    if http_status is not None:
        if http_status == 413:
            return FailureCode.TOO_LARGE
        if http_status == 415:
            return FailureCode.UNSUPPORTED_TYPE
        if http_status == 404:
            return FailureCode.SOURCE_GONE  # the API's 404s are run errors: a source's
        if http_status == 412:
            return FailureCode.SOURCE_CHANGED
        if 400 <= http_status < 500:
            return FailureCode.REJECTED
    if any(words in text for words in _BATCH_REFUSALS):
        return FailureCode.REJECTED_IN_BATCH
    return FailureCode.PROCESSING_FAILED
