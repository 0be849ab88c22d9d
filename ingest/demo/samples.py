"""A realistic, generated sample bucket for the demo, the tests and the benchmarks.

Real files, made without image libraries: PNGs are true images (gradients, deflated with
zlib); JPEGs are a small real baseline JPEG with a comment segment of varying length (so
each is distinct and decodable); PDFs are minimal valid one-page documents; TXT/MD are
prose. Some objects are unsupported (video, archives), some duplicate another's bytes under
a new key, and keys form a nested tree with unicode and spaces. Everything is derived from
``seed``: the same seed always gives the same bucket.
"""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from ingest.demo.generated import GeneratedStream
from ingest.streams import CHUNK_SIZE

# A 16x16 baseline JPEG (quality 75), 659 bytes. A COM segment is spliced in after SOI.
_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b"
    "0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e3334"
    "32ffdb0043010909090c0b0c180d0d1832211c21323232323232323232323232323232323232323232323232"
    "3232323232323232323232323232323232323232323232323232ffc000110800100010030122000211010311"
    "01ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b5100002010303"
    "020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f024"
    "33627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a63646566"
    "6768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7"
    "b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffc400"
    "1f0100030101010101010101010000000000000102030405060708090a0bffc400b511000201020404030407"
    "05040400010277000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a"
    "162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a63646566676869"
    "6a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9"
    "bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c030100"
    "02110311003f00f3fb1d0ba7c95d358685d3e4ae96c342e9f2574f63a174f92b4c5e6be62e1fcef6d4ffd9"
)
_WORDS = [
    "inspection",
    "site",
    "crane",
    "beam",
    "weld",
    "crack",
    "safety",
    "helmet",
    "scaffold",
    "concrete",
    "pour",
    "rebar",
    "bolt",
    "torque",
    "survey",
    "drone",
    "roof",
    "facade",
    "window",
    "pipe",
    "valve",
    "pump",
    "gauge",
    "corrosion",
    "paint",
    "label",
]
_PREFIXES = [
    "site-a/2024/05/inspection",
    "site-a/2024/06/inspection",
    "site-b/drone/north face",
    "site-b/drone/south face",
    "reports/quarterly",
    "archive/2019/scans",
    "café/photos",
    "misc",
]


@dataclasses.dataclass(frozen=True)
class SampleObject:
    """One object of the sample bucket: bytes in memory, or a generated stream when big."""

    key: str
    data: bytes | None = None
    generated_size: int = 0
    supported: bool = True
    duplicate_of: str | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.generated_size

    def chunks(self) -> Iterator[bytes]:
        """The bytes, chunk by chunk (a generated object is never held whole)."""
        if self.data is not None:
            yield self.data
            return
        yield from big_pdf_chunks(self.generated_size, seed=len(self.key))


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def make_jpeg(rng: random.Random, size: int) -> bytes:
    """A valid JPEG of about ``size`` bytes: the template plus COM segments of text."""
    pad = max(0, size - len(_JPEG))
    segments = bytearray()
    while pad > 4:
        n = min(pad - 4, 65_000)
        text = (_words(rng, n // 5 + 1).encode() * 2)[:n]
        segments += b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text
        pad -= len(text) + 4
    return _JPEG[:2] + bytes(segments) + _JPEG[2:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def make_png(rng: random.Random, width: int, height: int) -> bytes:
    """A true-colour PNG with a gradient and some noise (noise keeps sizes realistic)."""
    r0, g0, b0 = rng.randrange(256), rng.randrange(256), rng.randrange(256)
    noise = rng.randbytes(width * 3)
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            rows.append(((r0 + x + y) ^ (noise[3 * x] >> 4)) & 255)
            rows.append(((g0 + 2 * y) ^ (noise[3 * x + 1] >> 4)) & 255)
            rows.append(((b0 + x * y) ^ (noise[3 * x + 2] >> 4)) & 255)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + _png_chunk(b"IEND", b"")
    )


def make_pdf(rng: random.Random, lines: int) -> bytes:
    """A minimal valid one-page PDF with ``lines`` lines of text and a correct xref table."""
    text = "\n".join(
        f"BT /F1 10 Tf 40 {800 - 12 * (i % 60)} Td ({_words(rng, 8)}) Tj ET" for i in range(lines)
    ).encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def big_pdf_chunks(size: int, seed: int = 0) -> Iterator[bytes]:
    """``size`` bytes that start like a PDF, made on the fly (for the >100 MB object)."""
    head = b"%PDF-1.4\n% generated large scan\n"
    yield head
    yield from GeneratedStream(size - len(head), seed=seed, chunk_size=CHUNK_SIZE).iter_sync()


def sample_bucket(count: int, seed: int = 1, big_object_size: int = 0) -> list[SampleObject]:
    """``count`` small objects (plus one generated big PDF when ``big_object_size``)."""
    rng = random.Random(seed)
    objects: list[SampleObject] = []
    for i in range(count):
        prefix = _PREFIXES[i % len(_PREFIXES)]
        roll = rng.random()
        if roll < 0.05 and objects:
            original = rng.choice(objects[: max(1, len(objects) // 2)])
            if original.data is not None and original.supported:
                ext = original.key.rsplit(".", 1)[-1]
                key = f"{prefix}/copy of {i:05d}.{ext}"
                objects.append(SampleObject(key, original.data, duplicate_of=original.key))
                continue
        if roll < 0.45:
            key, data = (
                f"{prefix}/IMG_{i:05d}.jpg",
                make_jpeg(rng, int(rng.lognormvariate(9.5, 1.0))),
            )
        elif roll < 0.70:
            side = rng.choice((16, 32, 48, 64, 96, 128))
            key, data = f"{prefix}/diagram {i:05d}.png", make_png(rng, side, side)
        elif roll < 0.80:
            key, data = f"{prefix}/report-{i:05d}.pdf", make_pdf(rng, rng.randrange(5, 200))
        elif roll < 0.90:
            ext = rng.choice(("txt", "md"))
            key, data = (
                f"{prefix}/notes-{i:05d}.{ext}",
                (_words(rng, rng.randrange(20, 2000)) + "\n").encode(),
            )
        elif roll < 0.95:
            ext = rng.choice(("mp4", "zip", "exe"))
            objects.append(
                SampleObject(
                    f"{prefix}/clip-{i:05d}.{ext}",
                    rng.randbytes(rng.randrange(1, 50_000)),
                    supported=False,
                )
            )
            continue
        else:
            key, data = f"{prefix}/tiny-{i:05d}.jpg", make_jpeg(rng, 0)
        objects.append(SampleObject(key, data))
    if big_object_size:
        objects.append(
            SampleObject("archive/2019/scans/big survey scan.pdf", generated_size=big_object_size)
        )
    return objects


class ChunkReader(io.RawIOBase):
    """A file object over a chunk iterator (e.g. :func:`big_pdf_chunks`), for boto3's
    streaming multipart upload: a big object goes into S3 without ever being whole in
    memory. Used by the demo, the tests and the benchmarks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
