"""Manifest source: the items a CSV, JSON Lines or S3 Inventory manifest names.

The manifest may be in S3 or local; the objects it names are in S3 and are read from there.
Formats and their rules are in :mod:`.manifest_formats`; this module adds:

- **HEAD fill.** A row without size or ETag (or without a last-modified time when a time
  filter is set) gets one HEAD request. HEADs run concurrently, at most
  ``head_concurrency`` in flight, and items still come out in manifest order: rows wait in
  a bounded look-ahead (``2 × head_concurrency``) until the HEADs before them are done.
- **Bad rows.** A row that cannot become an item (bad cell, unknown object) is either a
  ConfigError naming the file and line (``INGEST_SOURCE__MANIFEST_ERRORS=fail``, the
  default) or is skipped and recorded in ``problems`` (``skip``): counted, with the first
  examples kept for the report.

The order is the manifest's own, so the same manifest always plans the same shards.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, cast

from ingest.errors import ConfigError, SourceItemError
from ingest.items import FailureCode, Item, Listed, PlainBatch, item_of
from ingest.s3.client import S3Client
from ingest.s3.uris import path_from_uri
from ingest.settings import SourceSettings
from ingest.sources import manifest_formats as fmt
from ingest.sources.base import Batch
from ingest.sources.records import Problems, iso_utc, sha256_hex, strip_etag
from ingest.sources.s3 import s3_config
from ingest.streams import ByteStream

_Ahead = Listed | asyncio.Task[Item | None]
# (module-level aliases: inside the class, ``list`` is the method)
_Rows = list[tuple[int, Listed | fmt.BadRow]]
_Records = list[fmt.Record]


class ManifestSource:
    """Items named by a manifest file (``kind``: ``csv``, ``jsonl`` or ``inventory``)."""

    def __init__(
        self,
        uri: str,
        kind: str,
        settings: SourceSettings,
        *,
        readers: int = 0,
        need_times: bool = False,
    ) -> None:
        """``readers``: GETs the caller runs at once (sizes the pool); ``need_times``: a
        row without a last-modified time gets a HEAD (a time filter is set)."""
        if kind not in ("csv", "jsonl", "inventory"):
            raise ConfigError(f"unknown manifest kind {kind!r}; use csv, jsonl or inventory")
        self.uri = uri
        self.kind = kind
        self.fail_fast = settings.manifest_errors == "fail"
        self.url_keys = settings.manifest_keys == "url"
        self.need_time = need_times
        self.lookahead = 2 * settings.head_concurrency
        self.checksums = settings.fetch_checksums  # ask the HEADs we do anyway
        self.problems = Problems()
        self.s3 = S3Client(s3_config(settings, readers))
        if not uri.startswith("s3://") and not path_from_uri(uri, "manifest").is_file():
            raise ConfigError(f"manifest {uri!r} does not exist or is not a file; check the path")

    # --- listing -----------------------------------------------------------------------

    async def list(self) -> AsyncIterator[Item]:
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for row in batch:
                    yield item_of(row)

    async def batches(self) -> AsyncGenerator[Batch]:
        ahead: collections.deque[_Ahead] = collections.deque()
        need_time, lookahead = self.need_time, self.lookahead
        try:
            async with contextlib.aclosing(self._batches()) as batches:
                async for location, rows, plain in batches:
                    if isinstance(rows, PlainBatch):  # the common chunk, as it is
                        if not ahead:
                            yield cast(Batch, rows)  # (a list of PlainRows: Listed ones)
                            continue
                        # HEADs still running before it: the loop below queues its rows
                        # (line numbers serve HEADs alone, and without need_time, the
                        # only case with PlainBatches, a PlainRow needs none)
                        rows = [(0, row) for row in rows]
                    elif plain and not need_time and not ahead:  # all PlainRows
                        yield cast(Batch, [row for _, row in rows])
                        continue
                    out: Batch = []
                    for line, row in rows:  # the hot loop: a plain loop over a chunk's rows
                        if isinstance(row, tuple) and not need_time and not ahead:
                            out.append(row)  # a complete plain row, nothing waiting: common
                            continue
                        elif isinstance(row, fmt.BadRow):
                            if self.fail_fast and out:
                                yield out  # the rows before it, as they came
                                out = []
                            self._bad(location, row)
                        elif (isinstance(row, tuple) and need_time) or (
                            isinstance(row, Item)
                            and (
                                row.size == fmt.UNKNOWN_SIZE
                                or row.etag is None
                                or (need_time and row.last_modified is None)
                            )
                        ):
                            fill = self._fill((location, line), item_of(row))
                            ahead.append(asyncio.create_task(fill, name="manifest-head"))
                        elif not ahead:
                            out.append(row)
                            continue
                        else:
                            ahead.append(row)
                        while ahead and (
                            len(ahead) > lookahead or not isinstance(ahead[0], asyncio.Task)
                        ):
                            if (done := await _settle(ahead.popleft())) is not None:
                                out.append(done)
                    if out:
                        yield out
            out = []
            while ahead:
                if (done := await _settle(ahead.popleft())) is not None:
                    out.append(done)
            if out:
                yield out
        finally:
            tasks = [t for t in ahead if isinstance(t, asyncio.Task)]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _fill(self, where: tuple[str, int], item: Item) -> Item | None:
        """``item`` completed from a HEAD request; None when the object does not exist."""
        assert item.bucket is not None  # rows without a bucket are BadRows
        try:
            head: dict[str, Any] = await self.s3.head(
                item.bucket, item.key, checksum=self.checksums and item.sha256 is None
            )
        except SourceItemError as exc:
            self._bad(where[0], fmt.BadRow(where[1], exc.message))
            return None
        sha = item.sha256
        if sha is None and self.checksums:
            try:
                sha = sha256_hex(head.get("ChecksumSHA256"))
            except ValueError:
                sha = None
        modified = head.get("LastModified")
        return dataclasses.replace(
            item,
            size=item.size if item.size != fmt.UNKNOWN_SIZE else int(head["ContentLength"]),
            etag=item.etag or strip_etag(head.get("ETag")),
            last_modified=item.last_modified or (iso_utc(modified) if modified else None),
            sha256=sha,
        )

    async def _batches(self) -> AsyncGenerator[tuple[str, _Rows | PlainBatch, bool]]:
        """(file, [(line, item or BadRow)...], whether all are PlainRows): every row, in
        file order, a chunk at a time (bad rows in their place, so :meth:`list` reports
        them in order); a chunk of common plain rows as a PlainBatch (no line numbers)."""
        if self.kind == "inventory":
            text = b"".join([c async for c in fmt.read_chunks(self.uri, self.s3)])
            inventory = fmt.parse_inventory(self.uri, text)
            for data in inventory.files:
                async for records in self._csv(data):
                    rows: _Rows = []
                    for line, cells in records:
                        row = cells if isinstance(cells, fmt.BadRow) else inventory.row(line, cells)
                        if row is not None:
                            rows.append((line, row))
                    yield data, rows, False
            return
        if self.kind == "jsonl":
            batches = fmt.line_batches(fmt.read_chunks(self.uri, self.s3))
            async for start, lines in batches:
                rows = []
                for line, raw in enumerate(lines, start):
                    fields = fmt.jsonl_row(line, raw)
                    if fields is not None:
                        rows.append(
                            (line, fields)
                            if isinstance(fields, fmt.BadRow)
                            else (line, fmt.row_item(line, fields, url_keys=False))
                        )
                yield self.uri, rows, False
            return
        columns: list[str] | None = None  # None: no header, the columns of CSV_COLUMNS
        first = True  # no record yet: the first one that is not a BadRow may be a header
        reader = fmt.CsvRecords()
        async for start, lines in fmt.line_batches(fmt.read_chunks(self.uri, self.s3)):
            if not first and columns is None:  # the hot loop: lines straight to rows
                if not self.need_time and (whole := fmt.plain_batch(reader, lines)) is not None:
                    yield self.uri, whole, True  # the common chunk: all plain, made at once
                    continue
                yield self.uri, *fmt.csv_line_rows(reader, start, lines, url_keys=self.url_keys)
                continue
            records = reader.records(start, lines)
            if first:
                first, columns, records = _take_header(records)
            yield self.uri, *self._csv_rows(records, columns)
        yield self.uri, *self._csv_rows(reader.finish(), columns)

    def _csv_rows(self, records: _Records, columns: Sequence[str] | None) -> tuple[_Rows, bool]:
        """Rows of CSV records (named by ``columns``, or the headerless CSV_COLUMNS), and
        whether all are complete PlainRows."""
        if columns is None:
            return fmt.csv_rows(records, url_keys=self.url_keys)
        rows: _Rows = []
        for line, cells in records:
            fields = cells if isinstance(cells, fmt.BadRow) else fmt.named(line, columns, cells)
            if isinstance(fields, fmt.BadRow):
                rows.append((line, fields))
            else:
                rows.append((line, fmt.row_item(line, fields, url_keys=self.url_keys)))
        return rows, False

    async def _csv(self, location: str) -> AsyncIterator[_Records]:
        reader = fmt.CsvRecords()
        async for start, lines in fmt.line_batches(fmt.read_chunks(location, self.s3)):
            yield reader.records(start, lines)
        yield reader.finish()

    def _bad(self, where: str, row: fmt.BadRow) -> None:
        reason = row.reason if len(row.reason) <= 300 else row.reason[:300] + "..."
        if self.fail_fast:
            raise ConfigError(
                f"{where} line {row.line}: {reason}; fix the line or set "
                "INGEST_SOURCE__MANIFEST_ERRORS=skip to skip bad lines"
            )
        self.problems.add(where, row.line, reason)

    # --- reading -----------------------------------------------------------------------

    async def open(self, item: Item) -> ByteStream:
        if item.bucket is None:
            raise SourceItemError(
                f"manifest item {item.key!r} has no bucket",
                code=FailureCode.SOURCE_UNREADABLE.value,
            )
        return await self.s3.get(item.bucket, item.key, etag=item.etag, version_id=item.version_id)

    async def aclose(self) -> None:
        await self.s3.aclose()

    async def __aenter__(self) -> ManifestSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ManifestSource({self.uri!r}, kind={self.kind!r})"


def _take_header(records: _Records) -> tuple[bool, list[str] | None, _Records]:
    """(whether the header is still to come, its columns, the records without it): the
    first record that is not a BadRow is a header when it names the columns."""
    for at, (_, cells) in enumerate(records):
        if not isinstance(cells, fmt.BadRow):
            if (header := fmt.header_columns(cells)) is not None:
                return False, header, records[:at] + records[at + 1 :]
            return False, None, records
    return True, None, records


async def _settle(entry: _Ahead) -> Listed | None:
    return await entry if isinstance(entry, asyncio.Task) else entry
