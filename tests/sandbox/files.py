"""Small real files for the sandbox tests (made in memory, never checked in)."""

from __future__ import annotations

import io
import struct
import zlib


def png(width: int = 2, height: int = 2, seed: int = 0) -> bytes:
    """A valid RGB PNG; ``seed`` changes the pixels (and so the SHA-256)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(
        b"\x00" + bytes((seed + x + y) % 256 for x in range(width * 3)) for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg(seed: int = 0, size: int = 0) -> bytes:
    """A minimal JPEG-framed file (SOI, a COM segment carrying ``seed``, padding, EOI).

    Enough for content sniffing (the sandbox, like the API's first check, reads the magic
    bytes); ``size`` pads it to about that many bytes.
    """
    comment = f"sandbox test {seed}".encode()
    body = b"\xff\xd8\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    pad = max(0, size - len(body) - 2)
    return body + bytes((seed + i) % 251 for i in range(pad)) + b"\xff\xd9"


def docx() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<document/>")
    return buf.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
