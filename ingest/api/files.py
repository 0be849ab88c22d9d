"""What to upload: a file's name, type and size, and how to open its bytes (again).

A :class:`~ingest.streams.ByteStream` can be read once, but a request may be sent several
times (retries), so uploads take a :class:`FileSpec` whose ``open`` makes a fresh stream
for every attempt: the worker re-opens the S3 object, a test re-wraps its bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

from ingest.errors import SourceItemError
from ingest.streams import BytesStream, ByteStream

Opener = Callable[[], Awaitable[ByteStream]]


@dataclasses.dataclass(frozen=True, slots=True)
class FileSpec:
    """One file to upload. ``size`` is promised up front: it fixes the Content-Length."""

    filename: str
    size: int
    content_type: str
    open: Opener = dataclasses.field(repr=False)

    @classmethod
    def from_bytes(cls, filename: str, data: bytes, content_type: str) -> FileSpec:
        """A spec over bytes in memory (small files, tests)."""

        async def opener() -> ByteStream:
            return BytesStream(data)

        return cls(filename=filename, size=len(data), content_type=content_type, open=opener)


class SizeMismatch(SourceItemError):
    """The source gave more or fewer bytes than planned: the object changed."""


async def exact_chunks(spec: FileSpec) -> AsyncIterator[bytes]:
    """Open ``spec`` and yield its chunks, checking the total is exactly ``spec.size``.

    A request whose Content-Length was computed from ``size`` would be corrupt otherwise,
    so a short or long stream raises :class:`SizeMismatch` (the item failed, not the run).
    The stream is closed however the iteration ends.
    """
    stream = await spec.open()
    sent = 0
    try:
        if stream.size != spec.size:
            raise SizeMismatch(
                f"{spec.filename}: source now has {stream.size} bytes, planned {spec.size}; "
                "the object changed since planning, plan again to include it"
            )
        async for chunk in stream:
            sent += len(chunk)
            if sent > spec.size:
                break
            if chunk:
                yield chunk
        if sent != spec.size:
            raise SizeMismatch(
                f"{spec.filename}: source gave {'more' if sent > spec.size else sent} bytes, "
                f"planned {spec.size}; the object changed, plan again to include it"
            )
    finally:
        await stream.aclose()


class FileBody:
    """A request body that is one file's raw bytes (the presigned PUT).

    Like :class:`~ingest.api.multipart.MultipartBody`, it re-opens the file on every
    iteration and keeps a source failure in :attr:`error`.
    """

    def __init__(self, spec: FileSpec) -> None:
        self.spec = spec
        self.content_length = spec.size
        self.error: BaseException | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.error = None
        try:
            async for chunk in exact_chunks(self.spec):
                yield chunk
        except Exception as exc:
            self.error = exc
            raise
