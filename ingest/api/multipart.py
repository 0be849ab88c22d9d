"""A multipart/form-data body streamed chunk by chunk, with its exact length up front.

httpx's own multipart encoder wants file-like objects and buffers what it cannot measure;
ours takes :class:`~ingest.api.files.FileSpec` (size known, bytes opened on demand), so a
100 MB file passes through in ``CHUNK_SIZE`` pieces and the request still carries a
``Content-Length`` (stream-batch and S3 refuse chunked bodies, and it lets the server
reject an oversized upload before reading it).

Names follow the WHATWG form encoding that browsers and httpx use (RFC 7578 §4.2 allows
it): in ``name``/``filename``, ``"`` becomes ``%22``, control characters ``%XX`` and a
backslash is doubled; other text, non-ASCII included, is sent as raw UTF-8.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Sequence

from ingest.api.files import FileSpec, exact_chunks

CRLF = b"\r\n"

_REPLACEMENTS = (
    {'"': "%22", "\\": "\\\\"}
    | {chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B}
    | {"\x7f": "%7F"}
)
_ESCAPE_RE = re.compile("|".join(re.escape(c) for c in _REPLACEMENTS))


def quote_param(value: str) -> str:
    """A header parameter value, escaped for a quoted string in a form-data part."""
    return _ESCAPE_RE.sub(lambda m: _REPLACEMENTS[m.group(0)], value)


def _safe_content_type(value: str) -> str:
    # A content type comes from the source's metadata: never let it break the header.
    return value if value and not any(ch in value for ch in "\r\n") else "application/octet-stream"


class MultipartBody:
    """``fields`` (name, value) then ``files`` (field name, spec), as one streamed body.

    Iterate it once per request attempt (each iteration re-opens the files). When a source
    fails mid-body the error is kept in :attr:`error`, because the HTTP engine may wrap
    whatever the body iterator raised into its own exception.
    """

    def __init__(
        self,
        fields: Sequence[tuple[str, str]],
        files: Sequence[tuple[str, FileSpec]],
        boundary: str | None = None,
    ) -> None:
        self.boundary = boundary or uuid.uuid4().hex
        self.error: BaseException | None = None
        sep = b"--" + self.boundary.encode("ascii")
        self._field_bytes = b"".join(
            sep
            + CRLF
            + f'Content-Disposition: form-data; name="{quote_param(name)}"'.encode()
            + CRLF * 2
            + value.encode()
            + CRLF
            for name, value in fields
        )
        self._files = [
            (
                sep
                + CRLF
                + (
                    f'Content-Disposition: form-data; name="{quote_param(name)}"; '
                    f'filename="{quote_param(spec.filename)}"'
                ).encode()
                + CRLF
                + f"Content-Type: {_safe_content_type(spec.content_type)}".encode()
                + CRLF * 2,
                spec,
            )
            for name, spec in files
        ]
        self._closing = sep + b"--" + CRLF
        self.content_length = (
            len(self._field_bytes)
            + sum(len(head) + spec.size + len(CRLF) for head, spec in self._files)
            + len(self._closing)
        )

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type, "Content-Length": str(self.content_length)}

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.error = None
        try:
            if self._field_bytes:
                yield self._field_bytes
            for head, spec in self._files:
                yield head
                async for chunk in exact_chunks(spec):
                    yield chunk
                yield CRLF
            yield self._closing
        except Exception as exc:
            self.error = exc
            raise
