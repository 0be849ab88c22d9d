"""The demo's generated sample bucket: real, decodable files, deterministic by seed."""

from __future__ import annotations

import hashlib
import re
import struct
import zlib

from ingest.demo.generated import GeneratedStream
from ingest.demo.samples import big_pdf_chunks, sample_bucket
from ingest.items import is_supported


def _jpeg_segments_reach_scan(data: bytes) -> bool:
    assert data[:2] == b"\xff\xd8"
    i = 2
    while i < len(data):
        marker, length = data[i : i + 2], struct.unpack(">H", data[i + 2 : i + 4])[0]
        assert marker[0] == 0xFF, f"bad marker at {i}"
        if marker == b"\xff\xda":
            return data.endswith(b"\xff\xd9")
        i += 2 + length
    return False


def _png_decodes(data: bytes) -> bool:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    i, idat, width, height = 8, b"", 0, 0
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind, body = data[i + 4 : i + 8], data[i + 8 : i + 8 + length]
        (crc,) = struct.unpack(">I", data[i + 8 + length : i + 12 + length])
        assert zlib.crc32(kind + body) == crc
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        i += 12 + length
    return len(zlib.decompress(idat)) == height * (1 + 3 * width)


def _pdf_xref_is_right(data: bytes) -> bool:
    assert data.startswith(b"%PDF-1.4")
    start = int(re.search(rb"startxref\n(\d+)", data).group(1))  # type: ignore[union-attr]
    offsets = [int(m) for m in re.findall(rb"(\d{10}) 00000 n", data)]
    return data[start:].startswith(b"xref") and all(
        data[o:].startswith(b"%d 0 obj" % n) for n, o in enumerate(offsets, 1)
    )


def test_every_supported_file_is_a_real_file_of_its_format() -> None:
    objects = sample_bucket(300, seed=5)
    checked = {"jpg": 0, "png": 0, "pdf": 0}
    for obj in objects:
        assert obj.data is not None
        ext = obj.key.rsplit(".", 1)[-1]
        if ext == "jpg":
            assert _jpeg_segments_reach_scan(obj.data), obj.key
        elif ext == "png":
            assert _png_decodes(obj.data), obj.key
        elif ext == "pdf":
            assert _pdf_xref_is_right(obj.data), obj.key
        else:
            continue
        checked[ext] += 1
    assert all(n > 10 for n in checked.values()), checked


def test_mix_has_duplicates_unsupported_and_awkward_keys() -> None:
    objects = sample_bucket(1000, seed=1)
    by_key = {o.key: o for o in objects}
    assert len(by_key) == len(objects)
    duplicates = [o for o in objects if o.duplicate_of]
    assert duplicates
    assert all(by_key[o.duplicate_of].data == o.data for o in duplicates)  # type: ignore[index]
    unsupported = [o for o in objects if not o.supported]
    assert unsupported
    assert not any(is_supported(o.key) for o in unsupported)
    assert all(is_supported(o.key) for o in objects if o.supported)
    assert any(" " in o.key for o in objects)
    assert any(not o.key.isascii() for o in objects)


def test_same_seed_same_bucket() -> None:
    a = [(o.key, o.data) for o in sample_bucket(200, seed=9)]
    b = [(o.key, o.data) for o in sample_bucket(200, seed=9)]
    assert a == b
    assert a != [(o.key, o.data) for o in sample_bucket(200, seed=10)]


def test_big_object_is_generated_not_stored() -> None:
    objects = sample_bucket(3, seed=1, big_object_size=3 * 1024 * 1024 + 7)
    big = objects[-1]
    assert big.data is None
    assert big.size == 3 * 1024 * 1024 + 7
    h, total = hashlib.sha256(), 0
    for chunk in big.chunks():
        h.update(chunk)
        total += len(chunk)
    assert total == big.size
    assert (
        h.hexdigest()
        == hashlib.sha256(b"".join(big_pdf_chunks(big.size, len(big.key)))).hexdigest()
    )
    assert next(iter(big.chunks())).startswith(b"%PDF-")


async def test_generated_stream_is_deterministic_and_sized() -> None:
    g = GeneratedStream(1_000_003, seed=7, chunk_size=65_536)
    h = hashlib.sha256()
    total = 0
    async for chunk in g:
        h.update(chunk)
        total += len(chunk)
    assert total == 1_000_003
    assert h.hexdigest() == g.sha256() == GeneratedStream(1_000_003, seed=7).sha256()
    assert g.sha256() != GeneratedStream(1_000_003, seed=8).sha256()
