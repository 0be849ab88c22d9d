"""S3 source: ``s3://bucket/prefix``, listed in parallel, emitted in key order.

How the parallel listing stays deterministic and memory-flat:

1. *Discovery* lists ``prefix`` with delimiter ``/``. S3 returns direct objects and common
   prefixes ("folders") in one sorted sequence. When a level is small (one page, fewer
   folders than ``list_concurrency``) each folder is discovered in turn the same way, down
   to ``_MAX_DEPTH`` levels, so ``data/2024/01..12/`` still spreads over 12 listers.
2. Each folder found is listed in full (no delimiter) by its own task, into its own bounded
   queue (``_QUEUE_PAGES`` pages); at most ``2 × list_concurrency`` folder tasks run ahead
   of the consumer and a semaphore holds the ListObjectsV2 calls in flight to
   ``list_concurrency``.
3. The consumer walks the discovery sequence in order: a direct object is yielded as is, a
   folder is drained from its queue. All keys under ``a/`` sort between the keys around
   ``a/`` in the discovery sequence, so the output is exactly the sorted key order of a
   plain ListObjectsV2 loop, whatever order the tasks finish in.

Memory is bounded by the queues and the look-ahead, never by the listing. A flat bucket
(no ``/`` in its keys) has nothing to split: it is listed as one stream.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from ingest.errors import SourceItemError
from ingest.items import FailureCode, Item
from ingest.s3.client import S3Client, S3Config
from ingest.s3.uris import parse_s3_uri, s3_uri
from ingest.settings import SourceSettings
from ingest.sources.base import Batch, in_batches
from ingest.sources.records import Problems, iso_utc, sha256_hex, strip_etag
from ingest.streams import ByteStream

_MAX_DEPTH = 3  # discovery levels below the prefix explored when levels are small
_QUEUE_PAGES = 2  # pages (≤1000 items each) buffered per folder task
_LOOKAHEAD = 10_000  # direct objects buffered while looking for the next folders to start


def s3_config(settings: SourceSettings, readers: int = 0) -> S3Config:
    """The S3 client's config for a source: its settings, and a pool for ``readers``
    concurrent GETs (plus the HEADs and a few spare)."""
    return S3Config(
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        max_attempts=settings.max_attempts,
        addressing_style=settings.addressing_style,
        max_connections=max(settings.head_concurrency, readers) + 8,
        list_concurrency=settings.list_concurrency,
        head_concurrency=settings.head_concurrency,
        lean_get=settings.lean_get,
    )


def item_from_listing(bucket: str, obj: dict[str, Any], sha256: str | None = None) -> Item:
    """An Item from one ListObjectsV2 ``Contents`` entry (or a HeadObject response)."""
    modified = obj.get("LastModified")
    return Item(
        key=obj["Key"],
        size=int(obj.get("Size", obj.get("ContentLength", 0))),
        etag=strip_etag(obj.get("ETag")),
        last_modified=iso_utc(modified) if modified is not None else None,
        bucket=bucket,
        sha256=sha256,
    )


_Page = list[Item]  # (a module-level alias: inside the class, ``list`` is the method)


@dataclasses.dataclass(slots=True)
class _Folder:
    """A common prefix being listed by its own task into its own queue."""

    prefix: str
    queue: asyncio.Queue[_Page | BaseException | None]


class S3Source:
    """Objects under an S3 prefix. See the module docstring for the listing's order."""

    def __init__(self, uri: str, settings: SourceSettings, *, readers: int = 0) -> None:
        self.uri = uri
        self.bucket, self.prefix = parse_s3_uri(uri, "source")
        self.settings = settings
        self.problems = Problems()  # S3 listings have no bad lines; kept for a uniform API
        self.s3 = S3Client(s3_config(settings, readers))
        self._tasks: set[asyncio.Task[None]] = set()

    # --- listing -----------------------------------------------------------------------

    def batches(self) -> AsyncIterator[Batch]:
        return in_batches(self.list())

    async def list(self) -> AsyncIterator[Item]:
        window = 2 * self.settings.list_concurrency
        ahead: collections.deque[Item | _Folder] = collections.deque()
        started: list[asyncio.Task[None]] = []
        running = 0
        exhausted = False
        async with contextlib.aclosing(self._discover(self.prefix, 0)) as entries:
            try:
                while True:
                    while not exhausted and running < window and len(ahead) < _LOOKAHEAD:
                        try:
                            entry = await anext(entries)
                        except StopAsyncIteration:
                            exhausted = True
                            break
                        if isinstance(entry, _Folder):
                            started.append(self._start(entry))
                            running += 1
                        ahead.append(entry)
                    if not ahead:
                        return
                    head = ahead.popleft()
                    if isinstance(head, Item):
                        yield head
                        continue
                    while (page := await head.queue.get()) is not None:
                        if isinstance(page, BaseException):
                            raise page
                        for item in page:
                            yield item
                    running -= 1
            finally:
                await _cancel([t for t in started if not t.done()])

    async def _discover(self, prefix: str, depth: int) -> AsyncGenerator[Item | _Folder]:
        """Direct objects and folders under ``prefix``, in key order (step 1)."""
        first = True
        async for page in self.s3.list_pages(self.bucket, prefix, delimiter="/"):
            folders = [p["Prefix"] for p in page.get("CommonPrefixes", ())]
            expand = (
                first
                and not page.get("IsTruncated")
                and depth < _MAX_DEPTH
                and len(folders) < self.settings.list_concurrency
            )
            first = False
            items = await self._items(page.get("Contents", ()))
            merged: list[tuple[str, Item | str]] = [(i.key, i) for i in items]
            merged += [(f, f) for f in folders]
            merged.sort(key=lambda pair: pair[0])
            for _, entry in merged:
                if isinstance(entry, Item):
                    yield entry
                elif expand:
                    async with contextlib.aclosing(self._discover(entry, depth + 1)) as sub:
                        async for found in sub:
                            yield found
                else:
                    yield _Folder(entry, asyncio.Queue(_QUEUE_PAGES))

    def _start(self, folder: _Folder) -> asyncio.Task[None]:
        task = asyncio.create_task(self._fill(folder), name=f"s3-list:{folder.prefix}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _fill(self, folder: _Folder) -> None:
        """List one folder in full into its queue (step 2); errors travel the queue too."""
        try:
            async for page in self.s3.list_pages(self.bucket, folder.prefix):
                await folder.queue.put(await self._items(page.get("Contents", ())))
        except Exception as exc:
            await folder.queue.put(exc)
        else:
            await folder.queue.put(None)

    async def _items(self, contents: Sequence[dict[str, Any]]) -> _Page:
        """Items of one page; with ``fetch_checksums``, one HEAD each (bounded, in order)."""
        if not self.settings.fetch_checksums:
            return [item_from_listing(self.bucket, obj) for obj in contents]
        hashes = await asyncio.gather(*(self._checksum(obj["Key"]) for obj in contents))
        return [item_from_listing(self.bucket, o, h) for o, h in zip(contents, hashes, strict=True)]

    async def _checksum(self, key: str) -> str | None:
        if key.endswith("/"):
            return None
        try:
            head = await self.s3.head(self.bucket, key, checksum=True)
        except SourceItemError:  # deleted between the listing and the HEAD
            return None
        try:
            return sha256_hex(head.get("ChecksumSHA256"))
        except ValueError:
            return None

    # --- reading -----------------------------------------------------------------------

    async def open(self, item: Item) -> ByteStream:
        stream: ByteStream = await self.s3.get(
            item.bucket or self.bucket, item.key, etag=item.etag, version_id=item.version_id
        )
        if stream.size != item.size and item.etag is None:
            await stream.aclose()
            where = s3_uri(item.bucket or self.bucket, item.key)
            raise SourceItemError(
                f"{where} changed since planning (size differs)",
                code=FailureCode.SOURCE_CHANGED.value,
            )
        return stream

    async def aclose(self) -> None:
        await _cancel(list(self._tasks))  # listings abandoned without aclose()
        await self.s3.aclose()

    async def __aenter__(self) -> S3Source:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"S3Source({self.uri!r})"


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until they are gone (nothing left running unseen)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
