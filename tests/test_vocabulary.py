"""Items, outcomes, generated streams: the shared vocabulary round-trips."""

from __future__ import annotations

import posixpath

from hypothesis import given
from hypothesis import strategies as st

from ingest.items import (
    FailureCode,
    Item,
    ItemResult,
    Outcome,
    content_type_for,
    extension,
    is_supported,
)
from ingest.state.records import item_from_json, item_to_json, result_from_json, result_to_json
from ingest.streams import BytesStream


def test_item_round_trip_is_compact() -> None:
    item = Item(key="a/b.JPG", size=3, etag="e", tags=("x", "y"), sha256="ab")
    d = item_to_json(item)
    assert "t" not in d and "v" not in d
    assert item_from_json(d) == item


def test_result_round_trip() -> None:
    r = ItemResult(1, "k", 2, Outcome.FAILED, "", "too big", 413, 1, FailureCode.TOO_LARGE)
    assert result_from_json(result_to_json(r)) == r


def test_supported_formats_by_extension_case_insensitive() -> None:
    assert is_supported("x/Y.JPEG") and is_supported("notes.md") and is_supported("d.docx")
    assert not is_supported("movie.mp4") and not is_supported("README")
    assert content_type_for("a.PNG") == "image/png"


async def test_bytes_stream_chunks() -> None:
    s = BytesStream(b"x" * 10, chunk_size=4)
    assert [c async for c in s] == [b"xxxx", b"xxxx", b"xx"]


@given(st.text(alphabet="ab./.JPG", max_size=12))
def test_extension_agrees_with_splitext(key: str) -> None:
    expected = posixpath.splitext(key.rsplit("/", 1)[-1])[1].lower()
    assert extension(key) == expected
