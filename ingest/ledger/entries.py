"""One ledger entry, its text line in a segment, and the order every segment is sorted in.

A segment line is tab-separated: ``bucket key size etag version image_id run_id time``.
Fields are escaped like PostgreSQL's COPY text format (``\\``, tab, newline, carriage
return become ``\\\\``, ``\\t``, ``\\n``, ``\\r``) because S3 keys may hold any character; an
empty field stands for None. Reading a field pays the unescape only when the line holds a
backslash, which real keys rarely do.

The order is that of :func:`sort_key`: ``bucket + "\\0" + key`` compared as Python strings,
that is by code point, which is also UTF-8 byte order (the order S3 lists keys in).
Bucket names hold no NUL, so two different (bucket, key) pairs never share a sort key.
"""

from __future__ import annotations

import dataclasses
import re

from ingest.errors import ConfigError

FIELDS = ("bucket", "key", "size", "etag", "version_id", "image_id", "run_id", "time")
_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPE = re.compile(r"\\(.)")
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
NAME_MAX = 63


def check_name(name: str) -> str:
    """``name`` when usable as a ledger name; ConfigError naming the rule otherwise.

    The name is a folder of the state store and the idempotency-key namespace of the
    import, so it keeps to the characters both accept.
    """
    if len(name) > NAME_MAX or not _NAME.match(name):
        raise ConfigError(
            f"ledger name {name!r} is not usable: use 1-{NAME_MAX} characters from A-Z, a-z, "
            "0-9, '.', '_' and '-', starting and ending with a letter or digit"
        )
    return name


def sort_key(bucket: str | None, key: str) -> str:
    """The order of ledger entries and of a listing joined against them."""
    return f"{bucket or ''}\0{key}"


def escape(value: str | None) -> str:
    if value is None:
        return ""
    if _SPECIAL.search(value) is None:
        return value
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], value)


def unescape(field: str) -> str:
    if "\\" not in field:
        return field
    return _UNESCAPE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(1)), field)


def _opt(field: str) -> str | None:
    return unescape(field) if field else None


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One object the import has sent (or the API already had): what the ledger remembers."""

    bucket: str | None
    key: str
    size: int
    etag: str | None
    version_id: str | None
    image_id: str | None
    run_id: str
    time: str  # ISO 8601, UTC, when the entry was recorded

    @property
    def sort_key(self) -> str:
        return sort_key(self.bucket, self.key)

    def to_line(self) -> str:
        """The segment line, without its newline."""
        return "\t".join(
            (
                escape(self.bucket),
                escape(self.key),
                str(self.size),
                escape(self.etag),
                escape(self.version_id),
                escape(self.image_id),
                escape(self.run_id),
                escape(self.time),
            )
        )

    @classmethod
    def from_line(cls, line: str) -> Entry:
        """Inverse of :meth:`to_line`; ValueError for a line that is not an entry."""
        parts = line.split("\t")
        if len(parts) != len(FIELDS):
            raise ValueError(f"a ledger line has {len(FIELDS)} fields, this one {len(parts)}")
        bucket, key, size, etag, version, image, run, time = parts
        return cls(
            bucket=_opt(bucket),
            key=unescape(key),
            size=int(size),
            etag=_opt(etag),
            version_id=_opt(version),
            image_id=_opt(image),
            run_id=unescape(run),
            time=unescape(time),
        )


def line_sort_key(line: str) -> str:
    """The sort key of a segment line, reading only its first two fields."""
    bucket, key, _ = line.split("\t", 2)
    if "\\" in bucket or "\\" in key:
        bucket, key = unescape(bucket), unescape(key)
    return f"{bucket}\0{key}"


def line_size_etag(line: str) -> tuple[int, str | None]:
    """The size and ETag of a segment line (what decides *changed*)."""
    _, _, size, etag, _ = line.split("\t", 4)
    return int(size), _opt(etag)
