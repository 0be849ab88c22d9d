"""The one interface every source implements.

A source lists its items as a stream, in a deterministic order (planning the same listing
twice gives the same shards), and opens one item's bytes as a :class:`ByteStream`. Listing
never holds the whole listing in memory; what it had to skip is counted in ``problems``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from ingest.items import Item, Listed
from ingest.sources.records import Problems
from ingest.streams import ByteStream

Batch = list[Listed]  # (module-level: inside the classes, ``list`` is the method)


class Source(Protocol):
    """A place holding items. Use as ``async with``; ``aclose`` releases clients."""

    uri: str
    problems: Problems
    """What listing skipped (bad manifest lines, unreadable files): empty when nothing was."""

    def list(self) -> AsyncIterator[Item]:
        """Every item, in a deterministic order. Raises ConfigError for a bad URI/manifest,
        RetryableError for transient trouble."""
        ...

    def batches(self) -> AsyncIterator[Batch]:
        """:meth:`list` in lists of rows (the planner's way: one step per list, not per
        item); a plain manifest row may come as a :data:`~ingest.items.PlainRow`, cheaper
        than an Item (:func:`~ingest.items.item_of` makes the Item)."""
        ...

    async def open(self, item: Item) -> ByteStream:
        """The item's bytes. Raises SourceItemError when the object is gone or its ETag
        differs from the planned one (changed since planning)."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Source: ...

    async def __aexit__(self, *exc: object) -> None: ...


BATCH_ITEMS = 64


async def in_batches(items: AsyncIterator[Item], size: int = BATCH_ITEMS) -> AsyncIterator[Batch]:
    """``items`` in lists of up to ``size`` (the last one shorter): a source's
    ``batches()`` from its ``list()``. Closes ``items`` when closed early."""
    batch: Batch = []
    try:
        async for item in items:
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()
    if batch:
        yield batch
