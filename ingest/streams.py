"""Byte streams of known size: how file bodies travel from a source to the API.

A source opens an item as a :class:`ByteStream`; the API client writes it into a request
body chunk by chunk. Nothing holds a whole file in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

CHUNK_SIZE = 256 * 1024


@runtime_checkable
class ByteStream(Protocol):
    """An async iterator of byte chunks whose total length is ``size``.

    Iterate it once. ``aclose`` releases the underlying connection or file; it is safe to
    call more than once and after the iteration ended.
    """

    size: int

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class BytesStream:
    """A stream over bytes already in memory (small files, tests)."""

    def __init__(self, data: bytes, chunk_size: int = CHUNK_SIZE) -> None:
        self.data = data
        self.size = len(data)
        self.chunk_size = chunk_size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        view = memoryview(self.data)
        for start in range(0, self.size, self.chunk_size):
            yield bytes(view[start : start + self.chunk_size])

    async def aclose(self) -> None:
        return None
