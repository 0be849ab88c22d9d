"""What the client tells an observer about its requests (metrics, without importing them).

The edge calls :meth:`RequestObserver.request_done` after every HTTP round trip and
:meth:`RequestObserver.retrying` before every retry. Endpoints are path *templates*
(``/uploads/sessions/{id}/results``), never a concrete id or a presigned URL, so an
observer can use them as bounded label values.
"""

from __future__ import annotations

import re
from typing import Protocol

from ingest.errors import RateLimited, RetryableError

PRESIGNED_PUT = "presigned:PUT"

# Path segments that are ids: the segment after these prefixes.
_ID_AFTER = re.compile(r"^(/uploads/(?:sessions|batch|status)|/user-files)/(?!upload/)[^/]+")


class RequestObserver(Protocol):
    """Told about each request; must be quick and must not raise."""

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        """One round trip to ``endpoint`` ended with HTTP ``code`` (or ``"error"``)."""

    def retrying(self, endpoint: str, cause: str) -> None:
        """A request to ``endpoint`` is tried again because of ``cause`` (see retry_cause)."""


def path_template(path: str) -> str:
    """``/uploads/sessions/abc/results`` -> ``/uploads/sessions/{id}/results``."""
    return _ID_AFTER.sub(r"\1/{id}", path, count=1)


def retry_cause(error: RetryableError) -> str:
    """``429``, ``5xx``, ``timeout`` or ``connection``: why a request is retried."""
    if isinstance(error, RateLimited) or error.status == 429:
        return "429"
    if error.status == 408 or error.message.startswith("timed out"):
        return "timeout"
    if error.status is not None:
        return "5xx"
    return "connection"
