"""Turning foreign records (S3 listings, manifest lines, stat results) into Item fields.

Every source normalises the same way, so a plan made from a manifest and one made from a
listing of the same bucket hold identical items: ETags without quotes, timestamps as ISO
8601 UTC with a ``Z``, SHA-256 as lower-case hex. Also here: :class:`Problems`, the bounded
record of the lines or files a source skipped.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import re

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def iso_utc(when: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` (a naive datetime is taken as UTC already)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def strip_etag(etag: str | None) -> str | None:
    """An ETag without its surrounding quotes (S3 returns ``"abc"``); empty → None."""
    if etag is None:
        return None
    etag = etag.strip().strip('"')
    return etag or None


def sha256_hex(value: str | None) -> str | None:
    """A SHA-256 given as hex (any case) or base64 (S3's ``ChecksumSHA256``) → lower hex.

    Returns None for None/empty and for S3's composite multipart checksums (``...-3``),
    which are not the hash of the whole file. Raises ValueError for anything else.
    """
    if not value:
        return None
    value = value.strip()
    if _HEX64.match(value):
        return value.lower()
    if "-" in value:  # composite checksum of a multipart upload: a hash of hashes
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"not a SHA-256 (64 hex digits or 44 base64 characters): {value!r}")
    return raw.hex()


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One skipped record: where it was (file and line, or a path) and why."""

    where: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        at = f"{self.where} line {self.line}" if self.line is not None else self.where
        return f"{at}: {self.reason}"


@dataclasses.dataclass
class Problems:
    """Records a source skipped (bad manifest lines, unreadable files), bounded in memory.

    ``count`` counts every one; ``examples`` keeps only the first ``limit`` so a manifest
    with a million bad lines cannot exhaust memory. The planner puts ``count`` in the plan
    and the examples in the report.
    """

    limit: int = 1000
    count: int = 0
    examples: list[Problem] = dataclasses.field(default_factory=list)

    def add(self, where: str, line: int | None, reason: str) -> None:
        self.count += 1
        if len(self.examples) < self.limit:
            self.examples.append(Problem(where, line, reason))

    def to_json(self) -> dict[str, object]:
        return {
            "count": self.count,
            "examples": [
                {"where": p.where, "line": p.line, "reason": p.reason} for p in self.examples
            ],
        }
