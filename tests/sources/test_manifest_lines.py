"""Manifest lines that are too long: a clear error or a skip, flat memory (issue 13, 10)."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ingest.errors import ConfigError
from ingest.sources import open_source
from ingest.sources.manifest_formats import MAX_LINE_BYTES, BadRow, numbered_lines
from tests.fixtures.s3 import S3Bucket
from tests.sources.helpers import collect, settings


def _manifest(tmp_path: Path, bucket: str, long_key: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text(f"{bucket},ok.jpg\n{bucket},{long_key}\n{bucket},ok2.jpg\n")
    return path


@pytest.mark.parametrize("length", [2_000, 3 * MAX_LINE_BYTES])
async def test_an_overlong_key_or_line_is_skipped_or_a_short_clear_error(
    s3_bucket: S3Bucket, tmp_path: Path, length: int
) -> None:
    s3_bucket.put("ok.jpg", b"ok")
    s3_bucket.put("ok2.jpg", b"ok2")
    manifest = _manifest(tmp_path, s3_bucket.name, "k" * length)  # needs a HEAD: no size
    source = open_source(str(manifest), settings(s3_bucket.endpoint_url, manifest_errors="skip"))
    items = await collect(source)
    assert [i.key for i in items] == ["ok.jpg", "ok2.jpg"]
    assert source.problems.count == 1
    [problem] = source.problems.examples
    assert problem.line == 2
    assert "longer than" in problem.reason and len(problem.reason) < 400

    with pytest.raises(ConfigError, match=r"line 2: .*longer than") as info:
        await collect(open_source(str(manifest), settings(s3_bucket.endpoint_url)))
    assert len(str(info.value)) < 600  # the key is not echoed back


async def _chunks(total: int, chunk: int, peaks: list[int]) -> AsyncIterator[bytes]:
    yield b"b,first.jpg\n"
    sent = 0
    while sent < total:
        yield b"x" * chunk
        sent += chunk
        peaks.append(tracemalloc.get_traced_memory()[0])
    yield b"\nb,last.jpg"


async def test_a_line_without_newline_is_read_in_flat_memory() -> None:
    """20 MB with no newline: the old reader held (and re-split) all of it, O(n^2)."""
    peaks: list[int] = []
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        lines = [x async for x in numbered_lines(_chunks(20 * 2**20, 64 * 1024, peaks))]
    finally:
        tracemalloc.stop()
    assert lines[0] == (1, b"b,first.jpg")
    assert isinstance(lines[1][1], BadRow) and lines[1][0] == 2
    assert "20,971,520 bytes" in lines[1][1].reason
    assert lines[2] == (3, b"b,last.jpg")
    assert max(peaks) - base < 4 * MAX_LINE_BYTES  # one line's cap, not the 20 MB


async def test_lines_split_across_chunks_are_joined() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for c in (b"\xef\xbb\xbfa,b", b"c\r\n", b"", b"d\ne", b"f"):
            yield c

    assert [x async for x in numbered_lines(chunks())] == [(1, b"a,bc"), (2, b"d"), (3, b"ef")]
