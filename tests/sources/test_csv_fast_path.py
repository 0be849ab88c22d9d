"""The manifest reader's fast paths give what the general paths give (hypothesis): the
unquoted-line split vs the csv module, plain rows vs row_item, batches vs single lines."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator

from hypothesis import given
from hypothesis import strategies as st

from ingest.items import Item, item_of
from ingest.sources.manifest_formats import (
    CSV_COLUMNS,
    BadRow,
    CsvRecords,
    csv_line_rows,
    csv_records,
    csv_row,
    csv_rows,
    line_batches,
    named,
    row_item,
)


def csv_item(line: int, cells: list[str], *, url_keys: bool) -> Item | BadRow:
    """csv_row's answer as an Item (what the reader made before rows could be tuples)."""
    row = csv_row(line, cells, url_keys=url_keys)
    return row if isinstance(row, (Item, BadRow)) else item_of(row)


async def _lines(lines: list[str]) -> AsyncIterator[tuple[int, bytes]]:
    for n, line in enumerate(lines, 1):
        yield n, line.encode()


cells = st.text(
    alphabet=st.characters(blacklist_characters='"\n\r\x00', blacklist_categories=("Cs",)),
    max_size=8,
)


@given(st.lists(st.lists(cells, min_size=1, max_size=5), min_size=1, max_size=5))
async def test_unquoted_rows_match_the_csv_module(rows: list[list[str]]) -> None:
    lines = [",".join(row) for row in rows]
    got = [r async for _, r in csv_records(_lines(lines))]
    expected = [r for line in lines if line.strip() for r in csv.reader([line + "\n"])]
    assert not any(isinstance(r, BadRow) for r in got)
    assert got == expected


CELLS = st.text(alphabet=' a%+2"_-/é\t\udcff', max_size=6) | st.sampled_from(["1", "-1", "0", ""])


@given(st.lists(CELLS, min_size=1, max_size=8), st.booleans(), st.integers(0, 3))
def test_the_plain_row_path_makes_what_row_item_makes(
    cells: list[str], url_keys: bool, long_key: int
) -> None:
    """csv_item (bucket,key[,size[,etag]] made directly) agrees with the general path,
    bad rows and their reasons included; some keys at or past S3's 1,024 bytes."""
    if len(cells) > 1 and long_key:
        cells[1] = "é" * (511 + long_key) + cells[1]  # 1,022-1,024 bytes, then the cell
    fields = named(7, CSV_COLUMNS, cells)
    want = fields if isinstance(fields, BadRow) else row_item(7, fields, url_keys=url_keys)
    assert csv_item(7, cells, url_keys=url_keys) == want


SIZE_CELLS = st.sampled_from(["1", "007", " 2", "+3", "1_0", "٣", "²", "-1", "", "x"])
ETAG_CELLS = st.sampled_from(["e", '"e"', " e ", "", '""', "a b"])
ROWS = st.lists(
    st.one_of(
        st.tuples(CELLS, CELLS, SIZE_CELLS, ETAG_CELLS).map(list),
        st.lists(CELLS, min_size=1, max_size=6),
        st.just(BadRow(0, "not UTF-8")),
    ),
    max_size=8,
)


@given(ROWS, st.booleans())
def test_csv_rows_make_what_csv_item_makes(rows: list[list[str] | BadRow], url_keys: bool) -> None:
    """csv_rows (the hot loop: four plain cells inlined) gives csv_row's answer for every
    record: a PlainRow exactly when the row is complete (size and ETag given), else the
    Item or BadRow csv_item makes; and says so when every row is a PlainRow."""
    records: list[tuple[int, list[str] | BadRow]] = [(n, r) for n, r in enumerate(rows, 1)]
    got, plain = csv_rows(records, url_keys=url_keys)
    assert [n for n, _ in got] == [n for n, _ in records]
    for (n, cells), (_, row) in zip(records, got, strict=True):
        if isinstance(cells, BadRow):
            assert row is cells
            continue
        assert row == csv_row(n, cells, url_keys=url_keys)
        want = csv_item(n, cells, url_keys=url_keys)
        if isinstance(row, tuple):
            assert isinstance(want, Item) and item_of(row) == want
            assert want.size >= 0 and want.etag and len(cells) <= 4
        else:
            assert row == want
            assert not (isinstance(want, Item) and want.size >= 0 and want.etag and len(cells) <= 4)
    assert plain == all(isinstance(row, tuple) for _, row in got)


def _line(cells: list[str]) -> bytes:
    return ",".join(cells).encode("utf-8", "surrogateescape")  # a lone surrogate: not UTF-8


LINES = st.one_of(
    st.tuples(CELLS, CELLS, SIZE_CELLS, ETAG_CELLS).map(list).map(_line),
    st.lists(CELLS, min_size=1, max_size=6).map(_line),
    st.sampled_from([b'b,"multi', b'line.jpg",3,e', b"", b"  ", b'"', b"b,k,1,e"]),
    st.just(BadRow(5, "line is too long")),
)


@given(st.lists(LINES, max_size=12), st.booleans(), st.lists(st.integers(1, 4), max_size=6))
def test_csv_line_rows_make_what_records_and_csv_rows_make(
    lines: list[bytes | BadRow], url_keys: bool, sizes: list[int]
) -> None:
    """The hot loop (a plain line straight to its PlainRow) gives what the CSV reader and
    csv_rows give, in batches cut anywhere: quoted cells (over lines too), bad UTF-8,
    blank lines, other widths, odd sizes and ETags, URL-encoded keys."""
    want_reader = CsvRecords()
    want, want_plain = csv_rows(want_reader.records(1, lines), url_keys=url_keys)
    reader, got, plain, at = CsvRecords(), [], True, 0
    for size in [*sizes, len(lines)]:
        rows, all_plain = csv_line_rows(reader, at + 1, lines[at : at + size], url_keys=url_keys)
        got += rows
        plain = plain and all_plain
        at += size
        if at >= len(lines):
            break
    assert got == want
    assert plain == want_plain
    assert reader.finish() == want_reader.finish()


def _reference_lines(data: bytes, max_bytes: int) -> list[tuple[int, bytes | str]]:
    """What numbered_lines must give: split on newlines, CR dropped, long lines bad."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [
        (n, line.removesuffix(b"\r") if len(line) <= max_bytes else f"{len(line):,} bytes")
        for n, line in enumerate(lines, 1)
    ]


@given(
    st.binary(max_size=60).map(lambda b: b.replace(b"\0", b"\n")),
    st.lists(st.integers(0, 12), max_size=8),
    st.integers(1, 8),
    st.booleans(),
)
async def test_line_batches_split_anywhere_give_the_same_lines(
    data: bytes, cuts: list[int], max_bytes: int, bom: bool
) -> None:
    data = b"\xef\xbb\xbf" + data if bom else data
    pieces, at = [], 3 if bom else 0  # a BOM is looked for whole in the first chunk only
    for cut in cuts:
        pieces.append(data[at - (3 if bom and not pieces else 0) : at + cut])
        at += cut
    pieces.append(data[at - (3 if bom and not pieces else 0) :])

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    got: list[tuple[int, bytes | str]] = []
    async for start, lines in line_batches(chunks(), max_bytes):
        assert start == len(got) + 1  # batches number their lines consecutively
        for n, line in enumerate(lines, start):
            got.append((n, line if isinstance(line, bytes) else line.reason.split()[2] + " bytes"))
    assert got == _reference_lines(data, max_bytes)


QUOTED = st.sampled_from(
    [
        b"b,plain.jpg",
        b'b,"quoted, comma.jpg"',
        b'b,"starts',
        b'ends.jpg",3',
        b"",
        b"\xff,x",
        b'"',
        b"b,k",
    ]
)


@given(st.lists(QUOTED, max_size=12), st.lists(st.integers(1, 4), max_size=6))
async def test_csv_records_do_not_depend_on_batch_bounds(
    lines: list[bytes], sizes: list[int]
) -> None:
    """Quoted cells spanning lines, bad UTF-8, blank lines: the records are the same
    whether the lines come one at a time or in batches cut anywhere."""
    one_by_one = [r async for r in csv_records(_lines_bytes(lines))]
    reader, got, at = CsvRecords(), [], 0
    for size in [*sizes, len(lines)]:
        got += reader.records(at + 1, lines[at : at + size])
        at += size
        if at >= len(lines):
            break
    got += reader.finish()
    assert got == one_by_one


async def _lines_bytes(lines: list[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    for n, line in enumerate(lines, 1):
        yield n, line
