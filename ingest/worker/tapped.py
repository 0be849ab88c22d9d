"""A ByteStream that calls a hook with each chunk's size before handing the chunk on.

Pacing (wait for byte budget) and accounting (count bytes sent) both watch a body go by;
one wrapper serves both, and they stack.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from ingest.streams import ByteStream

Tap = Callable[[int], Awaitable[None]]


class TappedStream:
    def __init__(self, inner: ByteStream, tap: Tap) -> None:
        self.inner = inner
        self.size = inner.size
        self.tap = tap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            await self.tap(len(chunk))
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()
