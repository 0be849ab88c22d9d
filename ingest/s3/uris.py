"""The two URI schemes the project reads and writes: ``s3://bucket/key`` and ``file:///path``.

One parser for each, shared by the sources and the state store, so both accept (and refuse)
the same spellings. ``what`` names the thing in error messages ("source", "state store",
"manifest").
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from ingest.errors import ConfigError


def parse_s3_uri(uri: str, what: str = "S3 URI") -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (``bucket``, ``some/prefix``), the key part unchanged
    (a trailing ``/`` matters to a listing)."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"{what} {uri!r} is not an S3 URI; use s3://bucket/prefix")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError(f"{what} {uri!r} names no bucket; use s3://bucket/prefix")
    return bucket, key


def s3_uri(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}"


def path_from_uri(uri: str, what: str = "file URI") -> Path:
    """``file:///a/b`` (or ``file://localhost/a/b``) or ``/a/b`` or ``a/b`` → an absolute
    Path (percent-escapes decoded in ``file:`` URIs only)."""
    if uri.startswith("file:"):
        parts = urllib.parse.urlsplit(uri)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ConfigError(
                f"{what} {uri!r} is not a local path (a file URI with a host or no path); "
                "use file:///absolute/path"
            )
        return Path(urllib.parse.unquote(parts.path)).absolute()
    return Path(uri).expanduser().absolute()
