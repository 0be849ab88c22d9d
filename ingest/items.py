"""The shared vocabulary: items (what the source holds), outcomes (what became of them).

An :class:`Item` is one source object. Shards store items as compact JSON lines (short
keys, empty fields left out) because a plan may hold millions of them.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

# The user's document: Images JPEG, PNG, WebP, GIF; Documents PDF, DOCX, TXT, MD.
SUPPORTED_EXTENSIONS: Mapping[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".txt": "text/plain",
    ".md": "text/markdown",
}


def extension(key: str) -> str:
    """The lower-cased extension of a key's last part (``""`` when it has none).

    The same answer as ``posixpath.splitext`` on the last part (leading dots, as in
    ``.hidden``, start no extension), without its allocations: the planner calls this
    for every listed object.
    """
    dot = key.rfind(".")
    start = key.rfind("/") + 1
    if dot <= start:
        return ""
    if key[start] == "." and not key[start:dot].strip("."):
        return ""
    return key[dot:].lower()


def is_supported(key: str) -> bool:
    """Whether the API accepts this key's format, judged by extension, case-insensitively."""
    return extension(key) in SUPPORTED_EXTENSIONS


def content_type_for(key: str) -> str:
    """The MIME type the API expects for a key, or ``application/octet-stream``."""
    return SUPPORTED_EXTENSIONS.get(extension(key), "application/octet-stream")


class Outcome(enum.StrEnum):
    """What became of one planned item. Every planned item ends with exactly one."""

    UPLOADED = "uploaded"
    SKIPPED_DUPLICATE = "skipped_duplicate"
    SKIPPED_UNSUPPORTED = "skipped_unsupported"
    SKIPPED_FILTERED = "skipped_filtered"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One source object.

    ``key`` is the object key (S3), the path relative to the root (local folder), or the
    manifest's key; ``bucket`` is set for S3 and for manifests naming several buckets.
    ``etag`` is the S3 ETag as listed (quotes stripped) or a local file's mtime-size tag;
    it identifies the version the plan saw, so a changed object is detected.
    """

    key: str
    size: int
    etag: str | None = None
    last_modified: str | None = None  # ISO 8601, UTC
    bucket: str | None = None
    version_id: str | None = None
    sha256: str | None = None  # lower-case hex
    content_type: str | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Compact JSON form for shard files: short keys, empty fields left out."""
        d: dict[str, Any] = {"k": self.key, "s": self.size}
        for short, value in (
            ("e", self.etag),
            ("m", self.last_modified),
            ("b", self.bucket),
            ("v", self.version_id),
            ("h", self.sha256),
            ("c", self.content_type),
            ("t", self.title),
        ):
            if value is not None:
                d[short] = value
        if self.tags:
            d["g"] = list(self.tags)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Item:
        """Inverse of :meth:`to_json`."""
        return cls(
            key=d["k"],
            size=d["s"],
            etag=d.get("e"),
            last_modified=d.get("m"),
            bucket=d.get("b"),
            version_id=d.get("v"),
            sha256=d.get("h"),
            content_type=d.get("c"),
            title=d.get("t"),
            tags=tuple(d.get("g", ())),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PendingId:
    """What it takes to find an uploaded file's image id later, in bulk: the stream-batch
    session it went in, the name it was sent under, and the wall-clock window (epoch
    seconds) from sending the request to its answer, inside which the API created it."""

    session_id: str
    filename: str
    sent: float
    answered: float

    def to_json(self) -> dict[str, Any]:
        return {"s": self.session_id, "n": self.filename, "w": [self.sent, self.answered]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PendingId:
        return cls(d["s"], d["n"], float(d["w"][0]), float(d["w"][1]))


@dataclasses.dataclass(slots=True)
class ItemResult:
    """The outcome of one item of a shard, as written to the results parts and the report."""

    ordinal: int
    key: str
    size: int
    outcome: Outcome
    image_id: str | None = None
    reason: str | None = None
    http_status: int | None = None
    attempts: int = 0
    # An upload whose image id is still to be resolved (``worker.batch_results=list``).
    pending: PendingId | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "o": self.ordinal,
            "key": self.key,
            "size": self.size,
            "outcome": self.outcome.value,
            "attempts": self.attempts,
        }
        if self.image_id is not None:
            d["image_id"] = self.image_id
        if self.reason is not None:
            d["reason"] = self.reason
        if self.http_status is not None:
            d["http_status"] = self.http_status
        if self.pending is not None:
            d["pending"] = self.pending.to_json()
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ItemResult:
        return cls(
            ordinal=d["o"],
            key=d["key"],
            size=d["size"],
            outcome=Outcome(d["outcome"]),
            image_id=d.get("image_id"),
            reason=d.get("reason"),
            http_status=d.get("http_status"),
            attempts=d.get("attempts", 0),
            pending=PendingId.from_json(d["pending"]) if d.get("pending") else None,
        )
