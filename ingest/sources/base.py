"""The one interface every source implements.

A source lists its items as a stream, in a deterministic order (planning the same listing
twice gives the same shards), and opens one item's bytes as a :class:`ByteStream`. Listing
never holds the whole listing in memory; what it had to skip is counted in ``problems``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from ingest.items import Item
from ingest.sources.records import Problems
from ingest.streams import ByteStream


class Source(Protocol):
    """A place holding items. Use as ``async with``; ``aclose`` releases clients."""

    uri: str
    problems: Problems
    """What listing skipped (bad manifest lines, unreadable files): empty when nothing was."""

    def list(self) -> AsyncIterator[Item]:
        """Every item, in a deterministic order. Raises ConfigError for a bad URI/manifest,
        RetryableError for transient trouble."""
        ...

    async def open(self, item: Item) -> ByteStream:
        """The item's bytes. Raises SourceItemError when the object is gone or its ETag
        differs from the planned one (changed since planning)."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Source: ...

    async def __aexit__(self, *exc: object) -> None: ...
