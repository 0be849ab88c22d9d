"""Byte streams of known size: how file bodies travel from a source to the API.

A source opens an item as a :class:`ByteStream`; the API client writes it into a request
body chunk by chunk. Nothing holds a whole file in memory.
"""

from __future__ import annotations

import hashlib
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


class GeneratedStream:
    """``size`` deterministic pseudo-random bytes made on the fly from ``seed``.

    For objects too big to keep in git or memory (the >100 MB presigned path, 1 GiB
    benchmarks): the same seed and size always give the same bytes, so a test can know the
    SHA-256 without storing the data. Chunks are SHA-256 counter blocks, cheap to make.
    """

    def __init__(self, size: int, seed: int = 0, chunk_size: int = CHUNK_SIZE) -> None:
        self.size = size
        self.seed = seed
        self.chunk_size = chunk_size

    def _block(self, counter: int) -> bytes:
        # 1 KiB blocks: a SHA-512 digest (64 bytes) repeated would compress; use 16 digests.
        base = hashlib.sha512(f"{self.seed}:{counter}".encode()).digest()
        return base * 16

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.iter_sync():
            yield chunk

    def iter_sync(self) -> _SyncChunks:
        return _SyncChunks(self)

    async def aclose(self) -> None:
        return None

    def sha256(self) -> str:
        h = hashlib.sha256()
        for chunk in self.iter_sync():
            h.update(chunk)
        return h.hexdigest()


class _SyncChunks:
    def __init__(self, gen: GeneratedStream) -> None:
        self.gen = gen
        self.pos = 0

    def __iter__(self) -> _SyncChunks:
        return self

    def __next__(self) -> bytes:
        gen = self.gen
        if self.pos >= gen.size:
            raise StopIteration
        n = min(gen.chunk_size, gen.size - self.pos)
        first_block, offset = divmod(self.pos, 1024)
        out = bytearray()
        block = first_block
        while len(out) < offset + n:
            out += gen._block(block)
            block += 1
        self.pos += n
        return bytes(out[offset : offset + n])
