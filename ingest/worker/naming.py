"""What is sent with each file, and by which route.

Pure functions of the item and the worker's settings, so a re-send after a crash sends
exactly the same name, title, tags and idempotency key as the first attempt.

Two limits of ``stream-batch`` shape the routes (uploads-api.md): it has no per-file
title, and its ``tags`` apply to every file of the request. So an item with its own title
goes by ``stream`` (one request for one file: honouring the manifest's title costs request
budget, and that is the user's choice to make in the manifest), and batches are grouped by
their tag set (:attr:`UploadFields.batch_key`) so that no file gets another file's tags.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import posixpath
import unicodedata

from ingest.items import Item, content_type_for, is_supported
from ingest.settings import STREAM_MAX_BYTES, WorkerSettings

TITLE_MAX = 255  # the API's limit on title
# The API documents no filename limit; 255 bytes is what S3 and most filesystems take,
# and the server may prefix it with a folder. Keep the name well inside that.
FILENAME_MAX_BYTES = 200
_UNSAFE = set('/\\"')
IDEMPOTENCY_PREFIX = "ai-"


class Route(enum.StrEnum):
    """How one item travels."""

    UNSUPPORTED = "unsupported"  # not sent: outcome skipped_unsupported
    BATCH = "batch"  # small file, in a stream-batch request
    STREAM = "stream"  # one file per stream request, up to 100 MB
    PRESIGNED = "presigned"  # request-presigned-url, PUT, confirm


def _clean(text: str) -> str:
    """NFC, control and format characters dropped (they break headers and logs)."""
    if text.isascii() and text.isprintable():  # the common case: already clean (NFC too)
        return text
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))


def _cut_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode(errors="ignore")


def safe_filename(key: str, max_bytes: int = FILENAME_MAX_BYTES) -> str:
    """The key's last part, safe to send: no path or control characters, unicode kept,
    at most ``max_bytes`` UTF-8 bytes with the extension kept, never empty."""
    name = _clean(key.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
    name = "".join("_" if ch in _UNSAFE else ch for ch in name).strip()
    if name in ("", ".", ".."):
        name = "file"
    stem, ext = posixpath.splitext(name)
    if len(ext.encode()) > 16:  # not a real extension: treat it as part of the name
        stem, ext = name, ""
    if len(name.encode()) > max_bytes:
        name = (_cut_utf8(stem, max_bytes - len(ext.encode())).rstrip() or "file") + ext
    return name


def make_title(item: Item, filename: str) -> str:
    """The item's title (from the manifest) or the filename, cut to the API's 255 chars."""
    title = _clean(item.title).strip() if item.title else ""
    return (title or filename)[:TITLE_MAX]


def merge_tags(item_tags: tuple[str, ...] | list[str], run_tags: list[str]) -> tuple[str, ...]:
    """Item tags then run tags; trimmed, deduplicated, no commas inside a tag (the API's
    ``tags`` field is comma-separated, so a comma would split one tag into two)."""
    out: list[str] = []
    for raw in (*item_tags, *run_tags):
        tag = " ".join(_clean(raw).replace(",", " ").split())
        if tag and tag not in out:
            out.append(tag)
    return tuple(out)


def idempotency_key(namespace: str, item: Item) -> str:
    """``ai-`` + 40 hex digits of SHA-256 over namespace, bucket, key, etag and version.

    Deterministic (a re-send uses the same key, so the API gives the same upload), within
    ``^[a-zA-Z0-9_\\-\\.]{1,128}$`` whatever the key holds, and a changed object (new etag
    or version) gets a new key.
    """
    parts = (namespace, item.bucket or "", item.key, item.etag or "", item.version_id or "")
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return IDEMPOTENCY_PREFIX + digest[:40]


def route_for(item: Item, worker: WorkerSettings) -> Route:
    """Unsupported formats are not sent; small untitled files go in batches; the rest by
    ``stream`` up to 100 MB, then by presigned URL."""
    if not is_supported(item.key):
        return Route.UNSUPPORTED
    if item.size > STREAM_MAX_BYTES:
        return Route.PRESIGNED
    small = item.size <= worker.small_file_max and item.size <= worker.batch_max_bytes
    if small and not item.title:
        return Route.BATCH
    return Route.STREAM


@dataclasses.dataclass(frozen=True, slots=True)
class UploadFields:
    """Everything sent with one file."""

    route: Route
    filename: str
    title: str
    tags: tuple[str, ...]
    content_type: str
    idempotency_key: str

    @property
    def batch_key(self) -> str:
        """Files may share a stream-batch request only with the same tags."""
        return ",".join(self.tags)


def upload_fields(item: Item, worker: WorkerSettings, namespace: str) -> UploadFields:
    filename = safe_filename(item.key)
    return UploadFields(
        route=route_for(item, worker),
        filename=filename,
        title=make_title(item, filename),
        tags=merge_tags(item.tags, worker.tags),
        content_type=content_type_for(filename),
        idempotency_key=idempotency_key(namespace, item),
    )
