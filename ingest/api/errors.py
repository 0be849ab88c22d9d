"""Turn an HTTP failure into the project's error tree, once, at this edge.

The API answers errors in three shapes (``uploads-api.md``, ``aionvision-api-notes.md``)::

    {"error": {"code", "message", "details"}, "request_id"}   the global handler
    {"detail": [{"loc", "msg", "type"}, ...]}                 FastAPI validation (422)
    {"error": "...", "message": "...", "details": {...}}        user-files endpoints

:func:`parse_error_body` reads any of them (or plain text) into an :class:`ApiErrorInfo`;
:func:`classify` decides what the caller should do: retry (429, 5xx), stop the run (401,
403, quota), or give up on this one file (400, 413, 415, 422). Messages are one line,
name the endpoint and say what to do; they never carry headers or the API key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import json
import math
from typing import Any

from ingest.errors import (
    ConfigError,
    FatalError,
    IngestError,
    ItemRejected,
    QuotaExhausted,
    RateLimited,
    RetryableError,
)

_MAX_MESSAGE = 300  # server messages are quoted, but never a whole HTML error page

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
ITEM_STATUSES = frozenset({400, 409, 413, 415, 422})


@dataclasses.dataclass(frozen=True, slots=True)
class ApiErrorInfo:
    """What the server said about a failure, whatever shape it used."""

    code: str | None = None
    message: str | None = None
    details: Any = None
    request_id: str | None = None


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _validation_message(items: list[Any]) -> str:
    """``loc: msg`` for each FastAPI validation entry, joined on one line."""
    parts = []
    for entry in items:
        if isinstance(entry, dict):
            loc = ".".join(str(p) for p in entry.get("loc", ()) if p != "body")
            msg = str(entry.get("msg", ""))
            parts.append(f"{loc}: {msg}" if loc else msg)
        else:
            parts.append(str(entry))
    return "; ".join(parts)


def parse_error_body(body: bytes, content_type: str | None = None) -> ApiErrorInfo:
    """Read any of the three documented error shapes; anything else becomes its text."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        text = body.decode("utf-8", "replace").strip()
        if content_type and "html" in content_type:
            text = ""  # a proxy's error page says nothing a person needs
        return ApiErrorInfo(message=_shorten(text) if text else None)
    request_id = doc.get("request_id")
    request_id = str(request_id) if request_id else None
    err = doc.get("error")
    if isinstance(err, dict):  # the nested envelope
        return ApiErrorInfo(
            code=_str_or_none(err.get("code")),
            message=_shorten(str(err.get("message") or "")) or None,
            details=err.get("details"),
            request_id=request_id,
        )
    if "detail" in doc:  # FastAPI: a list of validation errors, or a plain string
        detail = doc["detail"]
        message = _validation_message(detail) if isinstance(detail, list) else str(detail)
        code = "VALIDATION_ERROR" if isinstance(detail, list) else None
        return ApiErrorInfo(
            code=code, message=_shorten(message) or None, details=detail, request_id=request_id
        )
    if isinstance(err, str) or "message" in doc or "error_code" in doc:  # the flat forms
        code = _str_or_none(doc.get("error_code")) or _str_or_none(err)
        return ApiErrorInfo(
            code=code,
            message=_shorten(str(doc.get("message") or "")) or None,
            details=doc.get("details"),
            request_id=request_id,
        )
    return ApiErrorInfo(message=_shorten(json.dumps(doc))[:_MAX_MESSAGE], request_id=request_id)


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    ``now`` is the wall-clock time (epoch seconds) an HTTP date is measured against; a
    date in the past means "now" (0). Unreadable values give None (fall back to backoff).
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now)


def _is_quota(code: str | None, message: str | None) -> bool:
    text = f"{code or ''} {message or ''}".lower()
    return "quota" in text or "monthly limit" in text or "upload limit" in text


def classify(
    status: int,
    info: ApiErrorInfo,
    *,
    endpoint: str,
    request_id: str,
    retry_after: float | None = None,
    url: str | None = None,
) -> IngestError:
    """The project's error for an HTTP error answer from the API (``status`` >= 400).

    ``endpoint`` names what was called (a path, never a presigned URL's query string);
    ``request_id`` is the X-Request-ID we sent, used when the body carries none; ``url``
    the full URL called (named when the base URL itself looks wrong: a 404).
    """
    rid = info.request_id or request_id
    said = f": {info.message}" if info.message else ""
    kw: dict[str, Any] = {"status": status, "code": info.code, "request_id": rid}
    if _is_quota(info.code, info.message) and status in {402, 403, 429}:
        return QuotaExhausted(
            f"upload quota exhausted at {endpoint}{said}; raise the plan's limit or wait "
            "for the monthly reset, then rerun (finished items are kept)",
            **kw,
        )
    if status == 429:
        return RateLimited(
            f"rate limited at {endpoint}{said}",
            retry_after=retry_after,
            **kw,
        )
    if status in RETRYABLE_STATUSES or status >= 500:
        return RetryableError(
            f"server error at {endpoint}{said}",
            retry_after=retry_after,
            **kw,
        )
    if status == 401:
        return FatalError(
            f"the API refused the key at {endpoint}{said}; set a valid key in "
            "AIONVISION_API_KEY (or INGEST_API__KEY)",
            **kw,
        )
    if status == 403:
        return FatalError(
            f"the key may not call {endpoint}{said}; use a key whose plan allows uploads",
            **kw,
        )
    if status == 402:
        return FatalError(
            f"billing stopped uploads at {endpoint}{said}; settle the plan, then rerun", **kw
        )
    if status == 404:
        # Every endpoint this client calls exists under a right base URL, and the ids it
        # sends come from the API's own answers: a 404 means the base URL is wrong, for
        # every item of the run alike. A configuration error (exit 2), never a rejected item.
        return ConfigError(
            f"no API endpoint at {url or endpoint}{said}; check AIONVISION_BASE_URL "
            "(INGEST_API__BASE_URL): it should be the API's root, e.g. "
            "https://api.aionvision.tech/api/v2",
            **kw,
        )
    if status == 413:
        return ItemRejected(f"too large for {endpoint}{said}", **kw)
    if status == 415:
        return ItemRejected(f"unsupported file type for {endpoint}{said}", **kw)
    if status in ITEM_STATUSES:
        return ItemRejected(f"refused by {endpoint}{said}", **kw)
    # Other 4xx: the request itself is wrong for this item.
    return ItemRejected(f"HTTP {status} from {endpoint}{said}", **kw)


def attempts_of(exc: BaseException) -> int:
    """How many attempts the client made before raising ``exc`` (1 when not recorded)."""
    value = getattr(exc, "attempts", 1)
    return value if isinstance(value, int) else 1


class StorageRejected(ItemRejected):
    """The object store refused a presigned PUT (an expired or altered URL): the item fails."""
