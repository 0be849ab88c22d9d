"""Streaming multipart parsing with SHA-256 on the fly, and content sniffing.

Bodies are fed chunk by chunk from the ASGI receive channel into python-multipart's
push parser; each file part is hashed as its bytes pass and, with ``--store disk``,
written to a temp file in the data dir (renamed into place when the upload commits). No
file is ever held whole in memory. A part over the size limit keeps being read (so the
client can read our 413) but is no longer hashed or written.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ingest.sandbox.errors import ApiError, ValidationFailed
from ingest.sandbox.http import Request

HEAD_BYTES = 4096
MAX_FIELD_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Format:
    name: str
    mime: str
    media_type: str
    document_type: str | None
    extensions: tuple[str, ...]


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("jpeg", "image/jpeg", "image", None, (".jpg", ".jpeg", ".jpe", ".jfif")),
        Format("png", "image/png", "image", None, (".png",)),
        Format("gif", "image/gif", "image", None, (".gif",)),
        Format("webp", "image/webp", "image", None, (".webp",)),
        Format("pdf", "application/pdf", "document", "pdf", (".pdf",)),
        Format(
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "document",
            "docx",
            (".docx",),
        ),
        Format("txt", "text/plain", "document", "txt", (".txt",)),
        Format("md", "text/markdown", "document", "md", (".md", ".markdown")),
    )
}
SUPPORTED_EXTENSIONS = {ext for f in FORMATS.values() for ext in f.extensions}
SUPPORTED_MIMES = {f.mime for f in FORMATS.values()} | {"image/jpg", "text/x-markdown"}
SUPPORTED_TEXT = "JPEG, PNG, WebP, GIF, PDF, DOCX, TXT, MD"


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        # not final: a multibyte character may be cut at the end of the head
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def sniff(head: bytes, filename: str) -> Format | str:
    """The file's format, or why it is not supported (content first, then extension).

    Binary formats are known by their magic bytes; a name without an extension is fine for
    them (S3 keys often have none), a foreign extension is not. DOCX is a ZIP that must be
    named .docx; TXT/MD are valid UTF-8 named .txt/.md.
    """
    ext = os.path.splitext(filename)[1].lower()
    fmt: Format | None = None
    if head.startswith(b"\xff\xd8\xff"):
        fmt = FORMATS["jpeg"]
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        fmt = FORMATS["png"]
    elif head[:6] in (b"GIF87a", b"GIF89a"):
        fmt = FORMATS["gif"]
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        fmt = FORMATS["webp"]
    elif head.startswith(b"%PDF-"):
        fmt = FORMATS["pdf"]
    elif head.startswith(b"PK\x03\x04"):
        if ext == ".docx":
            return FORMATS["docx"]
        return f"ZIP content named {filename!r} is not a .docx document"
    elif ext in (".txt", ".md", ".markdown"):
        if head and _is_text(head):
            return FORMATS["txt" if ext == ".txt" else "md"]
        return f"{filename!r} is not UTF-8 text"
    if fmt is None:
        return f"unrecognised content in {filename!r}"
    if ext and ext not in SUPPORTED_EXTENSIONS:
        return f"extension {ext!r} of {filename!r} is not a supported format"
    return fmt


class FilePart:
    """One file part: its size, SHA-256, first bytes, and (disk store) its temp file."""

    __slots__ = ("_file", "field", "filename", "hasher", "head", "path", "size", "too_large")

    def __init__(self, field: str, filename: str, sink_dir: Path | None) -> None:
        self.field = field
        self.filename = filename
        self.size = 0
        self.hasher = hashlib.sha256()
        self.head = b""
        self.too_large = False
        self.path: Path | None = None
        self._file: IO[bytes] | None = None
        if sink_dir is not None:
            fd, name = tempfile.mkstemp(dir=sink_dir, prefix=".part-")
            self.path = Path(name)
            self._file = os.fdopen(fd, "wb")

    def feed(self, data: Any, limit: int) -> None:
        if self.too_large:
            self.size += len(data)
            return
        self.size += len(data)
        if self.size > limit:
            self.too_large = True
            self.discard()
            return
        self.hasher.update(data)
        if len(self.head) < HEAD_BYTES:
            self.head += bytes(data[: HEAD_BYTES - len(self.head)])
        if self._file is not None:
            self._file.write(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Drop the temp file (rejected, aborted, or a duplicate that was skipped)."""
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None

    @property
    def sha256(self) -> str:
        return self.hasher.hexdigest()


@dataclasses.dataclass
class Form:
    fields: dict[str, list[str]]
    files: list[FilePart]
    #: every part's field name and whether it carried a filename, in order
    names: list[tuple[str, bool]]

    def discard(self) -> None:
        for f in self.files:
            f.discard()


def boundary_of(req: Request) -> bytes:
    ctype, params = parse_options_header(req.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ValidationFailed.one(
            ["body"], "Expected a multipart/form-data body with a boundary", "missing"
        )
    return boundary


async def parse_form(
    req: Request,
    *,
    max_file_bytes: int,
    sink_dir: Path | None,
    drop_after: int | None = None,
) -> Form:
    """Parse the whole multipart body of ``req``, hashing files as they stream past.

    ``drop_after``: a fault; once that many body bytes arrived, abort the connection.
    """
    form = Form({}, [], [])
    header_name = bytearray()
    header_value = bytearray()
    part_headers: dict[bytes, bytes] = {}
    current: FilePart | None = None
    field_name = ""
    field_buf = bytearray()
    field_over = False

    def on_part_begin() -> None:
        nonlocal current, field_over
        part_headers.clear()
        current = None
        field_buf.clear()
        field_over = False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        part_headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        nonlocal current, field_name
        _, params = parse_options_header(part_headers.get(b"content-disposition", b""))
        field_name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        form.names.append((field_name, filename is not None))
        if filename is not None:
            name = filename.decode("utf-8", "replace")
            current = FilePart(field_name, os.path.basename(name.replace("\\", "/")), sink_dir)
            form.files.append(current)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        nonlocal field_over
        if current is not None:
            current.feed(memoryview(data)[start:end], max_file_bytes)
        elif len(field_buf) + end - start > MAX_FIELD_BYTES:
            field_over = True
        else:
            field_buf.extend(data[start:end])

    def on_part_end() -> None:
        if current is not None:
            current.close()
            return
        if field_over:
            raise ValidationFailed.one(
                ["body", field_name], f"Form field over {MAX_FIELD_BYTES} bytes", "string_too_long"
            )
        form.fields.setdefault(field_name, []).append(field_buf.decode("utf-8", "replace"))

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(boundary_of(req), callbacks)
    received = 0
    try:
        async for chunk in req.chunks():
            received += len(chunk)
            if drop_after is not None and received >= drop_after:
                raise DropConnection
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        form.discard()
        raise ApiError(400, "INVALID_MULTIPART", f"malformed multipart body: {exc}") from None
    except BaseException:
        form.discard()
        raise
    return form


class DropConnection(Exception):
    """Fault: the app aborts the client's connection instead of answering."""


def new_sink_dir(data_dir: Path) -> Path:
    """Where temp parts go: inside the data dir, so the final rename stays on one disk."""
    path = data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path
