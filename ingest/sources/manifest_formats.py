"""Reading manifest files: bytes (S3 or local, gzip or not) → numbered lines → rows → items.

Everything streams: a manifest of ten million lines is read chunk by chunk and never held
whole. Each row becomes an :class:`~ingest.items.Item` or a :class:`BadRow` that says why,
with the line it started on; :mod:`.manifest` decides whether a bad row stops the plan.

Formats (fields: ``bucket, key, size, etag, sha256, title, tags``):

- **CSV**, as S3 Batch Operations manifests: no header, columns in that order, only bucket
  and key required. An optional header row (only known column names, bucket and key
  among them) names the columns instead, in any order; it may also name ``version_id``
  and ``last_modified``. Keys are
  URL-encoded, as in S3 Batch Operations and Inventory files (``my%20photo.jpg`` or
  ``my+photo.jpg``), unless ``INGEST_SOURCE__MANIFEST_KEYS=raw``. Tags are one cell,
  separated by ``;``. Quoted cells may span lines.
- **JSON Lines**: one object a line with the same field names (``tags`` a list or a
  ``;``-separated string); keys are never URL-encoded (JSON can carry any character).
  Blank lines are ignored.
- **S3 Inventory**: ``manifest.json`` naming gzipped CSV data files in its destination
  bucket and their columns (``fileSchema``). Delete markers and non-current versions are
  left out. Only the CSV format is read (not ORC or Parquet).

Empty cells mean "unknown": size and ETag are then filled by HEAD.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import json
import re
import urllib.parse
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ingest.errors import ConfigError, SourceItemError
from ingest.items import Item, Listed, PlainBatch
from ingest.s3.client import S3Client
from ingest.s3.uris import parse_s3_uri, path_from_uri
from ingest.sources.records import iso_utc, sha256_hex, strip_etag

CSV_COLUMNS = ("bucket", "key", "size", "etag", "sha256", "title", "tags")
_KNOWN = {*CSV_COLUMNS, "version_id", "last_modified"}
_ALIASES = {"versionid": "version_id", "lastmodified": "last_modified", "e_tag": "etag"}
UNKNOWN_SIZE = -1  # placeholder until a HEAD fills it
_READ_CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class BadRow:
    """A row that could not become an item."""

    line: int
    reason: str


# --- bytes and lines -------------------------------------------------------------------


async def read_chunks(location: str, s3: S3Client) -> AsyncIterator[bytes]:
    """The bytes of a manifest file at an s3:// URI or a local path, gunzipped when its
    name ends in ``.gz`` (several gzip members in a row are read too)."""
    raw = _s3_chunks(location, s3) if location.startswith("s3://") else _file_chunks(location)
    if not location.lower().endswith(".gz"):
        async for chunk in raw:
            yield chunk
        return
    inflate = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    async for chunk in raw:
        while chunk:
            try:
                out = inflate.decompress(chunk)
            except zlib.error as exc:
                raise ConfigError(f"{location} is not valid gzip: {exc}; check the file") from None
            if out:
                yield out
            chunk = b""
            if inflate.eof:
                chunk = inflate.unused_data
                inflate = zlib.decompressobj(wbits=47)
    tail = inflate.flush()
    if tail:
        yield tail


async def _s3_chunks(location: str, s3: S3Client) -> AsyncIterator[bytes]:
    bucket, key = parse_s3_uri(location, "manifest")
    try:
        stream = await s3.get(bucket, key)
    except SourceItemError as exc:  # for the manifest itself, a missing file is bad usage
        raise ConfigError(f"cannot read manifest {location}: {exc.message}") from None
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await stream.aclose()


async def _file_chunks(location: str) -> AsyncIterator[bytes]:
    path = path_from_uri(location, "manifest")
    try:
        f = await asyncio.to_thread(open, path, "rb")
    except OSError as exc:
        raise ConfigError(
            f"cannot read manifest {str(path)!r}: {exc.strerror or exc}; check the path"
        ) from None
    try:
        while chunk := await asyncio.to_thread(f.read, _READ_CHUNK):
            yield chunk
    finally:
        f.close()


MAX_LINE_BYTES = 64 * 1024  # a row: an S3 key (at most 1,024 bytes) plus title, tags...
MAX_KEY_BYTES = 1024  # S3's own limit on a key
# Lines a batch holds at most. Small on purpose: the objects a batch makes die young, in
# the garbage collector's first generation; batches of a whole 1 MiB chunk (~12,000 rows)
# lived long enough to be promoted and re-scanned, which cost more than batching saved.
BATCH_LINES = 64


async def line_batches(
    chunks: AsyncIterator[bytes], max_bytes: int = MAX_LINE_BYTES
) -> AsyncIterator[tuple[int, list[bytes | BadRow]]]:
    """The lines of a byte stream (without their ends; a BOM dropped), a chunk's worth at a
    time: ``(number of the first line, from 1; the lines)``, numbered consecutively.

    A line longer than ``max_bytes`` is a BadRow, and its bytes are dropped as they come:
    memory stays at one chunk plus one line and time linear, newline or not (a line is
    never re-split). Batches keep the per-line work of a 10-million-line manifest in plain
    loops: one await per chunk, not per line.
    """
    pieces: list[bytes] = []
    held = 0  # bytes of the current line so far (counted on, once it is too long)
    number = 0  # lines finished so far
    first = True

    def too_long(total: int) -> BadRow:
        return BadRow(
            number,
            f"line is {total:,} bytes, longer than any manifest row can be "
            f"({max_bytes:,}; S3 keys are at most {MAX_KEY_BYTES:,})",
        )

    def finish(last: bytes) -> bytes | BadRow:
        nonlocal held
        total = held + len(last)
        line = (
            too_long(total)
            if total > max_bytes
            else (b"".join(pieces) + last if pieces else last).removesuffix(b"\r")
        )
        pieces.clear()
        held = 0
        return line

    async for chunk in chunks:
        if first:
            chunk, first = chunk.removeprefix(b"\xef\xbb\xbf"), False
        parts = chunk.split(b"\n")
        tail = parts.pop()
        if parts and b"\r" not in chunk and max(map(len, parts[1:]), default=0) <= max_bytes:
            # the common chunk: its whole lines as they are, in batches (no per-line work)
            start = number + 1
            whole: list[bytes | BadRow] = [finish(parts[0]), *parts[1:]]
            number += len(whole)
            for at in range(0, len(whole), BATCH_LINES):
                yield start + at, whole[at : at + BATCH_LINES]
        elif parts:
            start = number + 1
            number += 1
            lines: list[bytes | BadRow] = [finish(parts[0])]
            for part in parts[1:]:  # whole lines: no carry, the hot loop
                number += 1
                lines.append(
                    part.removesuffix(b"\r") if len(part) <= max_bytes else too_long(len(part))
                )
                if len(lines) >= BATCH_LINES:
                    yield start, lines
                    start, lines = number + 1, []
            if lines:
                yield start, lines
        if held + len(tail) <= max_bytes:
            pieces.append(tail)
        else:
            pieces.clear()  # too long already: only its length is kept
        held += len(tail)
    if held:
        number += 1
        yield number, [finish(b"")]


async def numbered_lines(
    chunks: AsyncIterator[bytes], max_bytes: int = MAX_LINE_BYTES
) -> AsyncIterator[tuple[int, bytes | BadRow]]:
    """(line number from 1, line without its end) of a byte stream: :func:`line_batches`
    one line at a time."""
    async for start, lines in line_batches(chunks, max_bytes):
        for number, line in enumerate(lines, start):
            yield number, line


_MAX_RECORD_LINES = 1000  # a quoted cell open longer than this is a broken file, not data

Record = tuple[int, "list[str] | BadRow"]


class CsvRecords:
    """CSV records with the line each starts on, from numbered lines fed in batches.

    A quoted cell may span lines: while the csv module says "unexpected end of data" the
    next line is added to the record (carried from one batch to the next). A line without
    a quote is split on commas (what csv would do, 5x faster); a blank line is no record.
    """

    def __init__(self) -> None:
        self.pending: list[str] = []
        """The lines of a record whose quoted cell is still open (a list changed in place)."""
        self._start = 0

    def records(self, start: int, lines: Sequence[bytes | BadRow]) -> list[Record]:
        """The records that ``lines`` (numbered from ``start``) complete."""
        out: list[Record] = []
        number = start - 1
        for raw in lines:
            number += 1
            if self.pending or not isinstance(raw, bytes):
                self._slow(number, raw, out)
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                out.append(
                    (number, BadRow(number, f"not UTF-8 ({exc.reason} at byte {exc.start})"))
                )
                continue
            if '"' in text:
                self._slow(number, raw, out)
            elif text.strip():
                out.append((number, text.split(",")))
        return out

    def _slow(self, number: int, raw: bytes | BadRow, out: list[Record]) -> None:
        pending = self.pending
        if isinstance(raw, BadRow):
            if pending:
                out.append((self._start, BadRow(self._start, "a quoted cell is never closed")))
                pending.clear()
            out.append((number, raw))
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.append((number, BadRow(number, f"not UTF-8 ({exc.reason} at byte {exc.start})")))
            return
        if not pending:
            if not text.strip():
                return
            if '"' not in text:
                out.append((number, text.split(",")))
                return
            self._start = number
        pending.append(text + "\n")
        try:
            rows = list(csv.reader(pending, strict=True))
        except csv.Error as exc:
            if "unexpected end of data" in str(exc) and len(pending) < _MAX_RECORD_LINES:
                return  # inside a quoted cell: the record goes on on the next line
            pending.clear()
            out.append((self._start, BadRow(self._start, f"bad CSV: {exc}")))
            return
        pending.clear()
        out.extend((self._start, row) for row in rows)

    def finish(self) -> list[Record]:
        """What is left at the end of the file: a quoted cell never closed, if any."""
        if not self.pending:
            return []
        self.pending.clear()
        return [(self._start, BadRow(self._start, "a quoted cell is never closed"))]


async def csv_records(
    lines: AsyncIterator[tuple[int, bytes | BadRow]],
) -> AsyncIterator[Record]:
    """:class:`CsvRecords` over numbered lines, one record at a time."""
    reader = CsvRecords()
    async for number, raw in lines:
        for record in reader.records(number, [raw]):
            yield record
    for record in reader.finish():
        yield record


# --- rows → items ----------------------------------------------------------------------


def header_columns(cells: list[str]) -> list[str] | None:
    """The column names if ``cells`` is a header row, else None.

    A header names only known columns, bucket and key among them, in any order. A first
    row starting ``bucket,key`` that names unknown columns is a mistake worth stopping for
    (a row starting with a bucket named "bucket" is data, though).
    """
    names = [_ALIASES.get(c.strip().lower(), c.strip().lower()) for c in cells]
    unknown = [n for n in names if n not in _KNOWN]
    if not unknown and "bucket" in names and "key" in names:
        return names
    if names[:2] == ["bucket", "key"]:
        raise ConfigError(
            f"manifest header names unknown columns {unknown or ['(no key column)']}; "
            f"use {', '.join(sorted(_KNOWN))}"
        )
    return None


def row_item(line: int, fields: Mapping[str, Any], *, url_keys: bool) -> Item | BadRow:
    """One manifest row (column name → cell) as an Item (size ``UNKNOWN_SIZE`` when not
    given), or a BadRow naming the first problem.

    The hot path of planning from a manifest (about a microsecond a field counts): optional
    fields absent or empty skip their parsers.
    """
    get = fields.get
    try:
        bucket = _text(get("bucket"))
        key = _text(get("key"))
        if not bucket:
            return BadRow(line, "no bucket")
        if not key:
            return BadRow(line, "no key")
        if url_keys and ("%" in key or "+" in key):
            key = urllib.parse.unquote_plus(key)
        if len(key) > MAX_KEY_BYTES // 4 and _utf8_len(key) > MAX_KEY_BYTES:
            return BadRow(line, f"key is longer than S3 allows ({MAX_KEY_BYTES:,} bytes)")
        size_text = get("size")
        size = UNKNOWN_SIZE
        if size_text is not None and size_text != "":
            try:
                size = int(size_text)
            except (ValueError, TypeError):
                size = -2
            if size < 0:
                return BadRow(line, f"size {size_text!r} is not a whole number of bytes")
        etag, modified, version, sha, title, tags = (
            get("etag"),
            get("last_modified"),
            get("version_id"),
            get("sha256"),
            get("title"),
            get("tags"),
        )
        return Item(
            key=key,
            size=size,
            etag=strip_etag(_text(etag)) if etag else None,
            last_modified=_timestamp(modified) if modified else None,
            bucket=bucket,
            version_id=_text(version) if version else None,
            sha256=sha256_hex(_text(sha)) if sha else None,
            title=_text(title) if title else None,
            tags=_tags(tags) if tags else (),
        )
    except (ValueError, TypeError) as exc:
        return BadRow(line, str(exc))


def csv_rows(
    records: Sequence[Record], *, url_keys: bool
) -> tuple[list[tuple[int, Listed | BadRow]], bool]:
    """(line, :func:`csv_row`) of each headerless record, BadRows as they are; and whether
    every one is a complete PlainRow (so a listing may pass them on as they are)."""
    out: list[tuple[int, Listed | BadRow]] = []
    plain = True
    for line, cells in records:
        row = cells if isinstance(cells, BadRow) else csv_row(line, cells, url_keys=url_keys)
        out.append((line, row))
        plain = plain and isinstance(row, tuple)
    return out, plain


def csv_line_rows(
    reader: CsvRecords, start: int, lines: Sequence[bytes | BadRow], *, url_keys: bool
) -> tuple[list[tuple[int, Listed | BadRow]], bool]:
    """:func:`csv_rows` of ``reader.records(start, lines)``, the common line made in one
    step: the hot loop of planning from a headerless CSV manifest.

    An unquoted UTF-8 line of four cells with a size and an ETag becomes its PlainRow
    here, without a call (the same tuple :func:`csv_row` makes: a test pins it); any
    other line goes through ``reader`` and :func:`csv_rows`.
    """
    out: list[tuple[int, Listed | BadRow]] = []
    plain = True
    pending = reader.pending  # the reader's open quoted record (a list: changes in place)
    for number, raw in enumerate(lines, start):
        if not pending and isinstance(raw, bytes) and b'"' not in raw:
            try:  # (UnicodeDecodeError, too many or few cells, a size not a number: all ValueError)
                bucket, key, size_text, etag = raw.decode("utf-8").split(",")
                size = int(size_text)  # as csv_row reads it
            except ValueError:
                pass
            else:
                if (
                    size >= 0
                    and bucket.strip()
                    and key.strip()
                    and len(key) <= _PLAIN_KEY_CHARS
                    and not (url_keys and ("%" in key or "+" in key))
                    and (etag := etag.strip())  # (no quote in the line to strip)
                ):
                    out.append((number, (bucket, key, size, etag)))
                    continue
        rows, all_plain = csv_rows(reader.records(number, [raw]), url_keys=url_keys)
        out += rows
        plain = plain and all_plain
    return out, plain


_PLAIN_KEY_CHARS = MAX_KEY_BYTES // 4  # a key this short is within S3's bytes in any UTF-8

# One line that csv_line_rows makes a PlainRow of, its cells exactly the row's fields:
# no quote or backslash in a cell; no control character in bucket and key (so no tab, CR
# or newline either), which start with a non-space (so neither is blank); the key is at
# most _PLAIN_KEY_CHARS long and holds no "%" or "+" (url_keys would decode it); the
# size is a whole number written as int() would print it; the ETag has no whitespace
# (strip() leaves it as it is). Lines that fit are the common case, not all the plain
# ones: any other line goes the per-line way.
_FIRST, _MORE = r'[^\s,"\\%+\x00-\x1f]', r'[^,"\\%+\x00-\x1f]'  # a cell's first char; others
_PLAIN_LINE = (
    rf"{_FIRST}{_MORE}*,{_FIRST}{_MORE}{{0,{_PLAIN_KEY_CHARS - 1}}},"
    r'(?:0|[1-9][0-9]*),[^\s,"\\]+'
)
_PLAIN_TEXT = re.compile(rf"(?:{_PLAIN_LINE}\n)*{_PLAIN_LINE}")


# The ASCII lines' quick check: translated by _SEPARATORS (deleting every ordinary byte,
# a comma or newline kept as it is, any other byte made "!"), lines that fit _PLAIN_LINE
# without a space leave exactly ",,,\n" a line; empty cells, the key's length and the
# sizes are checked on the cells.
_ORDINARY = bytes(set(range(0x21, 0x80)) - set(b',"\\%+'))
_SEPARATORS = bytes.maketrans(
    bytes(set(range(256)) - set(_ORDINARY) - set(b",\n")),
    b"!" * (256 - len(_ORDINARY) - 2),
)


def plain_batch(reader: CsvRecords, lines: Sequence[bytes | BadRow]) -> PlainBatch | None:
    """The rows of ``lines`` as one :class:`~ingest.items.PlainBatch` when every line is
    a common plain row (:data:`_PLAIN_LINE`; and no quoted record is open), else None
    (then :func:`csv_line_rows`). The same rows as csv_line_rows makes (a test pins it),
    made from the lines' text at once: checked by a translate and a few scans (or by
    the regex when some line has a space or a non-ASCII character), cut by one split.
    """
    if reader.pending or not lines:
        return None
    try:
        blob = b"\n".join(lines)  # type: ignore[arg-type]  # (TypeError: a BadRow)
        text = blob.decode("utf-8")
    except (TypeError, UnicodeDecodeError):
        return None
    quick = (
        blob.isascii()
        and blob.translate(_SEPARATORS, _ORDINARY) == b",,,\n" * (len(lines) - 1) + b",,,"
    )
    if not quick and _PLAIN_TEXT.fullmatch(text) is None:
        return None
    cells = text.replace("\n", ",").split(",")  # four a line: both checks say so
    sizes, keys = cells[2::4], cells[1::4]
    if quick:  # what the regex checks beyond the separators and the bytes
        written = ",".join(sizes)
        if (
            "" in cells
            or not written.replace(",", "").isdigit()  # (ASCII: 0-9 alone)
            or f",{written}".count(",0") != f",{written},".count(",0,")  # "0", never "07"
            or max(map(len, keys)) > _PLAIN_KEY_CHARS
        ):
            return None
    rows = zip(cells[0::4], keys, map(int, sizes), cells[3::4], strict=True)
    tabbed = (text.replace(",", "\t").replace("\n", "\t\n") + "\t").split("\n")
    return PlainBatch(rows, tabbed)


def csv_row(line: int, cells: list[str], *, url_keys: bool) -> Listed | BadRow:
    """A headerless CSV row (columns :data:`CSV_COLUMNS`) as :func:`row_item` makes it,
    but a complete plain row (``bucket,key,size,etag``, both of the last two given) is a
    :data:`~ingest.items.PlainRow` tuple, not an Item.

    The common manifest row, ``bucket,key[,size[,etag]]``, is made here directly, without
    the mapping and the nine look-ups (a hypothesis test pins the equality); other rows
    go through :func:`row_item`.
    """
    n = len(cells)
    if n > 4 or n < 2:
        fields = named(line, CSV_COLUMNS, cells)
        return fields if isinstance(fields, BadRow) else row_item(line, fields, url_keys=url_keys)
    bucket, key = cells[0], cells[1]
    if not bucket.strip():
        return BadRow(line, "no bucket")
    if not key.strip():
        return BadRow(line, "no key")
    if url_keys and ("%" in key or "+" in key):
        key = urllib.parse.unquote_plus(key)
    if len(key) > MAX_KEY_BYTES // 4 and _utf8_len(key) > MAX_KEY_BYTES:
        return BadRow(line, f"key is longer than S3 allows ({MAX_KEY_BYTES:,} bytes)")
    size = UNKNOWN_SIZE
    if n > 2 and (size_text := cells[2]):
        try:
            size = int(size_text)
        except ValueError:
            size = -2
        if size < 0:
            return BadRow(line, f"size {size_text!r} is not a whole number of bytes")
    etag = (cells[3].strip().strip('"') or None) if n > 3 else None  # strip_etag, inlined
    if etag is not None and size != UNKNOWN_SIZE:
        return (bucket, key, size, etag)  # the common row: a tuple, ~10x cheaper than an Item
    # Positional (key, size, etag, last_modified, bucket): keywords cost a third more
    # in a frozen dataclass's __init__, the largest cost of this function.
    return Item(key, size, etag, None, bucket)


def _utf8_len(text: str) -> int:
    return len(text.encode(errors="surrogatepass"))


def jsonl_row(line: int, raw: bytes | BadRow) -> Mapping[str, Any] | BadRow | None:
    """One JSON Lines row as a mapping, None for a blank line, or a BadRow."""
    if isinstance(raw, BadRow):
        return raw
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return BadRow(line, f"not JSON: {exc}")
    if not isinstance(value, dict):
        return BadRow(line, "not a JSON object")
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r}")
    return value if value.strip() else None


def _tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(";") if t.strip())
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return tuple(value)
    raise TypeError(f"tags must be a list of strings or ';'-separated text, got {value!r}")


def _timestamp(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return iso_utc(dt.datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"bad last_modified {text!r} (want ISO 8601)") from None


# --- S3 Inventory --------------------------------------------------------------------------

_INVENTORY_COLUMNS = {
    "bucket": "bucket",
    "key": "key",
    "versionid": "version_id",
    "size": "size",
    "lastmodifieddate": "last_modified",
    "etag": "etag",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Inventory:
    """What a ``manifest.json`` says: where the data files are and their columns."""

    files: tuple[str, ...]  # s3:// URIs of the gzipped CSV data files
    columns: tuple[str, ...]  # lower-cased fileSchema names

    def row(self, line: int, cells: list[str]) -> Item | BadRow | None:
        """A data file row as an Item, a BadRow, or None for a row to leave out (delete
        markers, non-current versions)."""
        if len(cells) != len(self.columns):
            return BadRow(line, f"{len(cells)} columns where fileSchema has {len(self.columns)}")
        row = dict(zip(self.columns, cells, strict=True))
        if row.get("isdeletemarker", "").lower() == "true":
            return None
        if row.get("islatest", "true").lower() == "false":
            return None
        fields = {ours: row.get(theirs) for theirs, ours in _INVENTORY_COLUMNS.items()}
        return row_item(line, fields, url_keys=True)


def parse_inventory(location: str, text: bytes) -> Inventory:
    """An S3 Inventory ``manifest.json`` → its data files and columns."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{location} is not a usable S3 Inventory manifest: {why}")

    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise bad("not a JSON object")
    fmt = str(doc.get("fileFormat", "")).upper()
    if fmt != "CSV":
        raise bad(f"fileFormat {fmt or 'missing'}; only CSV inventories are read")
    schema = doc.get("fileSchema")
    files = doc.get("files")
    dest = str(doc.get("destinationBucket", ""))
    if not isinstance(schema, str) or not isinstance(files, list) or not dest:
        raise bad("fileSchema, files and destinationBucket are required")
    columns = tuple(c.strip().lower() for c in schema.split(","))
    if "bucket" not in columns or "key" not in columns:
        raise bad("fileSchema lacks Bucket or Key")
    bucket = dest.rsplit(":", 1)[-1]  # arn:aws:s3:::name → name
    keys = [f.get("key") if isinstance(f, dict) else None for f in files]
    if not all(isinstance(k, str) and k for k in keys):
        raise bad("every entry of files needs a key")
    return Inventory(files=tuple(f"s3://{bucket}/{k}" for k in keys), columns=columns)


def named(line: int, columns: Sequence[str], cells: list[str]) -> dict[str, str] | BadRow:
    """Cells by column name; fewer cells than columns is fine (trailing optional ones)."""
    if len(cells) > len(columns):
        return BadRow(line, f"{len(cells)} columns, at most {len(columns)} expected")
    return dict(zip(columns, cells, strict=False))
