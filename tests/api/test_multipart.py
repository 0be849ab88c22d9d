"""The streamed multipart body: exact length, parses back, files opened per iteration."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from python_multipart.multipart import MultipartParser, parse_options_header

from ingest.api.files import FileBody, FileSpec, SizeMismatch
from ingest.api.multipart import MultipartBody, quote_param
from ingest.demo.generated import GeneratedStream
from ingest.streams import BytesStream, ByteStream


class _Part:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.field = b""
        self.value = b""
        self.data = b""


def parse(body: bytes, boundary: str) -> list[tuple[dict[bytes, bytes], bytes]]:
    """Parse with python-multipart (what the sandbox's Starlette uses): (options, data)."""
    parts: list[tuple[dict[bytes, bytes], bytes]] = []
    part = _Part()

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part.value += data[start:end]

    def on_header_end() -> None:
        part.headers[part.field.lower()] = part.value
        part.field = part.value = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part.data += data[start:end]

    def on_part_end() -> None:
        _, options = parse_options_header(part.headers[b"content-disposition"])
        if b"content-type" in part.headers:
            options[b"content-type"] = part.headers[b"content-type"]
        parts.append((options, part.data))

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    parser.write(body)
    parser.finalize()
    return parts


async def collect(body: MultipartBody | FileBody) -> bytes:
    return b"".join([chunk async for chunk in body])


async def test_fields_and_files_parse_back_with_an_exact_length() -> None:
    big = GeneratedStream(700_000, seed=3)  # several chunks
    files = [
        FileSpec.from_bytes("a.jpg", b"\xff\xd8jpeg", "image/jpeg"),
        FileSpec("big.bin", big.size, "application/octet-stream", open=_opener(big)),
        FileSpec.from_bytes("empty.txt", b"", "text/plain"),
    ]
    body = MultipartBody(
        [("tags", "a,b"), ("auto_describe", "true")], [("files", f) for f in files]
    )
    data = await collect(body)
    assert len(data) == body.content_length
    assert body.headers()["Content-Length"] == str(len(data))
    parts = parse(data, body.boundary)
    assert [(p[0][b"name"], p[1]) for p in parts[:2]] == [
        (b"tags", b"a,b"),
        (b"auto_describe", b"true"),
    ]
    assert [p[0][b"filename"] for p in parts[2:]] == [b"a.jpg", b"big.bin", b"empty.txt"]
    assert parts[2][1] == b"\xff\xd8jpeg"
    assert parts[3][1] == b"".join(GeneratedStream(700_000, seed=3).iter_sync())
    assert parts[4][1] == b""
    assert parts[2][0][b"content-type"] == b"image/jpeg"


def _opener(stream: ByteStream):  # type: ignore[no-untyped-def]
    async def opener() -> ByteStream:
        return stream

    return opener


async def test_each_iteration_reopens_the_files() -> None:
    opened = 0

    async def opener() -> ByteStream:
        nonlocal opened
        opened += 1
        return BytesStream(b"hello")

    body = MultipartBody([], [("file", FileSpec("h.txt", 5, "text/plain", open=opener))])
    first, second = await collect(body), await collect(body)
    assert first == second
    assert opened == 2


class _Lying(BytesStream):
    """Claims ``size`` bytes but yields ``data`` (a truncated or grown object)."""

    def __init__(self, data: bytes, size: int) -> None:
        super().__init__(data)
        self.size = size


@pytest.mark.parametrize(
    "stream",
    [BytesStream(b"other size"), _Lying(b"short", 8), _Lying(b"too long!", 8)],
    ids=["changed", "truncated", "grown"],
)
async def test_a_source_of_another_size_is_refused_and_kept_as_the_error(
    stream: ByteStream,
) -> None:
    spec = FileSpec("x.txt", 8, "text/plain", open=_opener(stream))
    body = MultipartBody([], [("file", spec)])
    with pytest.raises(SizeMismatch, match=r"x\.txt"):
        await collect(body)
    assert isinstance(body.error, SizeMismatch)


async def test_file_body_is_the_raw_bytes() -> None:
    body = FileBody(FileSpec.from_bytes("a.png", b"png-bytes", "image/png"))
    assert await collect(body) == b"png-bytes"
    assert body.content_length == 9


def test_quote_param_escapes_what_breaks_a_header() -> None:
    assert quote_param('a"b\\c\r\nd') == "a%22b\\\\c%0D%0Ad"
    assert quote_param("photo é 日本.jpg") == "photo é 日本.jpg"


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='"%'),
        min_size=1,
        max_size=40,
    )
)
async def test_any_filename_round_trips(name: str) -> None:
    body = MultipartBody([], [("file", FileSpec.from_bytes(name, b"x", "text/plain"))])
    ((options, data),) = parse(await collect(body), body.boundary)
    sent = options[b"filename"].decode("utf-8")
    # python-multipart strips a leading Windows path (an IE6 workaround); all else is kept.
    assert sent == name or name.split("\\")[-1] == sent
    assert data == b"x"
