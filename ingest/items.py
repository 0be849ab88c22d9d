"""The shared vocabulary: items (what the source holds), outcomes (what became of them).

An :class:`Item` is one source object. How items and outcomes are stored (compact JSON
lines) is :mod:`ingest.state.records`' business.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping

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


class FailureCode(enum.StrEnum):
    """Why an item failed, for machines; ``reason`` is for people.

    The one vocabulary of failures: the report's ``code`` column and its "failures by
    reason", what ``run --retry-failed`` leaves out (:data:`FINAL_CODES`) and the
    ``reason`` label of ``aion_ingest_object_failures_total`` all read these values, set
    where the failure happens (``worker/failures.py``, ``worker/uploads.py``; the report
    sets ``not_processed``). Results written before codes existed get theirs from the
    reason text when read (``state/old_results.py``).

    ``http_status`` goes with the codes the API or the storage answered with a status of
    their own; a refusal inside a stream-batch answer has none (the request was a 200).
    """

    REJECTED = "rejected"  # the API refused the file (400/422...; see http_status)
    TOO_LARGE = "too_large"  # 413
    UNSUPPORTED_TYPE = "unsupported_type"  # 415
    REJECTED_IN_BATCH = "rejected_in_batch"  # listed among a stream-batch's rejections
    PROCESSING_FAILED = "processing_failed"  # accepted, then failed on the server
    NO_RESULT = "no_result"  # the session's results named no outcome for it
    STORAGE_REJECTED = "storage_rejected"  # the presigned PUT was refused
    SOURCE_GONE = "source_gone"  # deleted since planning
    SOURCE_CHANGED = "source_changed"  # changed since planning, or while it was read
    SOURCE_UNREADABLE = "source_unreadable"  # cannot be read: access, archive, not a file
    QUOTA_EXHAUSTED = "quota_exhausted"  # the month's upload quota ran out before it was sent
    NOT_PROCESSED = "not_processed"  # no outcome: its shard stopped first (report rows only)


FINAL_CODES: frozenset[FailureCode] = frozenset(
    {
        FailureCode.REJECTED,  # empty, content not matching the name, invalid fields
        FailureCode.TOO_LARGE,
        FailureCode.UNSUPPORTED_TYPE,
        FailureCode.REJECTED_IN_BATCH,
        FailureCode.SOURCE_GONE,
        FailureCode.SOURCE_CHANGED,  # a retry plans the same version again
    }
)
"""Failures a retry of the same item cannot fix: ``run --retry-failed`` leaves them out
(``--all`` takes them too). The others (the storage refused a presigned PUT, the server
failed to process it or named no result, the source could not be read, the shard stopped)
may succeed on a second try."""


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


PlainRow = tuple[str, str, int, str]
"""A listed object that has nothing but ``(bucket, key, size, etag)`` (a plain manifest row,
``bucket,key,size,etag``), kept as a tuple until an :class:`Item` is needed
(:func:`item_of`): a tuple is about ten times cheaper to make than a frozen dataclass, and
a recurring import's planner needs an Item for only the ~1% of rows it plans."""

Listed = Item | PlainRow
"""One row of a listing in batches (a source's ``batches()``): an Item or a PlainRow."""


class PlainBatch(list[PlainRow]):
    """A batch of PlainRows that also carries each row as text, ``tabbed[i]`` =
    ``f"{bucket}\t{key}\t{size}\t{etag}\t"`` (the manifest source makes both from a
    chunk's text at C speed).

    Only rows whose bucket and key hold no control character (none below a space: no tab,
    newline or CR) and no backslash, and whose ETag holds no whitespace or backslash, are
    in one: then the text splits back into exactly the four fields, needs no escape in a
    ledger line, and ordering the texts orders the rows by ``(bucket, key)``. The
    anti-join compares these texts with the ledger's lines as they are
    (:meth:`~ingest.ledger.join.AntiJoin.add_batch`). Any other list of rows (a slice of
    one too) is an ordinary batch.
    """

    __slots__ = ("tabbed",)

    def __init__(self, rows: Iterable[PlainRow], tabbed: list[str]) -> None:
        super().__init__(rows)
        self.tabbed = tabbed


def item_of(row: Listed) -> Item:
    """The Item a listed row stands for (a PlainRow has no time, version or checksum)."""
    if isinstance(row, Item):
        return row
    bucket, key, size, etag = row
    return Item(key, size, etag, None, bucket)


@dataclasses.dataclass(frozen=True, slots=True)
class PendingId:
    """What it takes to find an uploaded file's image id later, in bulk: the stream-batch
    session it went in, the name it was sent under, and the wall-clock window (epoch
    seconds) from sending the request to its answer, inside which the API created it."""

    session_id: str
    filename: str
    sent: float
    answered: float


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
    code: str | None = None  # a FailureCode value on failed outcomes
    # An upload whose image id is still to be resolved (``worker.batch_results=list``).
    pending: PendingId | None = None
