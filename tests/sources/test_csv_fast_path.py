"""The unquoted-line fast path of the CSV reader gives what the csv module gives."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator

from hypothesis import given
from hypothesis import strategies as st

from ingest.sources.manifest_formats import BadRow, csv_records


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
