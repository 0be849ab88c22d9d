"""The manifest reader's fast paths give what the general paths give (hypothesis): the
unquoted-line split vs the csv module, plain rows vs row_item, batches vs single lines."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest.items import Item, PlainBatch, item_of
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
    plain_batch,
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


# Lines near the common plain row: a plain line with up to two edits, each a character
# put into a cell (ones the quick check or the regex turns away: space, comma, quote,
# backslash, %, +, controls, Unicode spaces; ones they let through: non-ASCII, DEL, "-",
# "_", "0") or a cell replaced (blank, sizes written every way int() reads, long keys).
ODD_CHARS = ' ,"\\%+\t\x00\x1f\x7f\xa0\u2028\u3000é-_0'
ODD_CELLS = ["", " ", "\xa0", "007", "00", "0", "-1", "-0", "1_0", " 2", "+3", "٣"]
ODD_CELLS += ["k" * n for n in (255, 256, 257, 1024, 1025)]  # (S3's limit: 1,024 bytes)
EDITS = st.sampled_from(
    [(cell, at, c) for cell in range(4) for at in (0, 1, 9) for c in ODD_CHARS]
    + [(cell, None, text) for cell in range(4) for text in ODD_CELLS]
)


def _edited(edits: list[tuple[int, int | None, str]]) -> bytes:
    cells = ["bkt", "k/x.jpg", "12", "e0f"]
    for cell, at, text in edits:
        old = cells[cell]
        cells[cell] = text if at is None else old[:at] + text + old[at:]
    return ",".join(cells).encode()


# A batch: plain lines with one or two edited (or bad) lines after them.
NEAR_BATCHES = st.tuples(
    st.integers(0, 3),
    st.lists(
        st.lists(EDITS, min_size=1, max_size=2).map(_edited)
        | st.sampled_from([b"b,k,1,e,x", b"b,k,1", b"", b'b,"k",1,e', b"b,\xff,1,e"])
        | st.just(BadRow(5, "line is too long")),
        min_size=1,
        max_size=2,
    ),
).map(lambda drawn: [_edited([])] * drawn[0] + drawn[1])


@settings(max_examples=1000)
@given(NEAR_BATCHES, st.booleans(), st.booleans())
@example([b"b,k,007,e"], False, False)  # (the same row; not the same text)
@example([b"b,k%20x,1,e"], True, False)
@example([b"b,k+x,1,e"], True, False)
@example([b"b," + b"k" * 1025 + b",1,e"], False, False)
@example([b"b,  ,1,e"], False, False)
def test_plain_batch_makes_what_csv_line_rows_makes(
    lines: list[bytes | BadRow], url_keys: bool, pending: bool
) -> None:
    """A batch of lines made at once (plain_batch) holds the rows csv_line_rows makes of
    them, each with its text ``bucket<TAB>key<TAB>size<TAB>etag<TAB>``; a batch it turns
    down is None (never a wrong row): quotes, spaces, escapes, URL-encoded keys, odd sizes
    and ETags, controls, non-ASCII, long keys, bad lines, a quoted record left open."""
    reader = CsvRecords()
    if pending:
        reader.records(1, [b'b,"open'])
    got = plain_batch(reader, lines)
    want, plain = csv_line_rows(reader, 2, lines, url_keys=url_keys)
    if got is None:
        return
    assert isinstance(got, PlainBatch)
    assert plain
    assert want == list(enumerate(got, 2))
    assert got.tabbed == [f"{b}\t{k}\t{size}\t{e}\t" for b, k, size, e in got]
    for bucket, key, _, etag in got:  # what the anti-join relies on (PlainBatch's rules)
        assert all(" " <= c != "\\" for c in bucket + key)
        assert etag and not any(c.isspace() or c == "\\" for c in etag)


def test_plain_batch_takes_the_common_lines_and_leaves_the_rest() -> None:
    """The common lines are taken (ASCII by the quick check, others by the regex); one
    line that is not makes the whole batch None, so csv_line_rows reads it."""
    plain = [b"bucket,photos/0001/img1.jpg,1234,9f0e", b"b,k,0,e-2", b"b,caf\xc3\xa9 x.jpg,5,e"]
    got = plain_batch(CsvRecords(), plain)
    assert got == [
        ("bucket", "photos/0001/img1.jpg", 1234, "9f0e"),
        ("b", "k", 0, "e-2"),
        ("b", "café x.jpg", 5, "e"),
    ]
    assert got is not None and got.tabbed[1] == "b\tk\t0\te-2\t"
    for odd in (b"b,k,01,e", b"b,k%20x,1,e", b"b,k,1,", b" b,k,1,e", b"b,k,1,e\te"):
        assert plain_batch(CsvRecords(), [*plain, odd]) is None


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
