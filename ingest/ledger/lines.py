"""Gzip files of text lines, written and read in blocks: the ledger's local working files.

Reading decompresses 1 MiB at a time and splits whole blocks at once, about three times
faster than iterating a :class:`gzip.GzipFile` line by line. Files may hold several gzip
members one after another (segment pages fetched from the store are just concatenated).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

_BLOCK = 1 << 20
# A local file name that is not UTF-8 arrives as lone surrogates (os.fsdecode); they are
# written and read back as they are, as the spool and the reports do.
_UTF8, _KEEP = "utf-8", "surrogatepass"
_FLUSH_LINES = 4096


def compressor(level: int = 6) -> zlib._Compress:
    return zlib.compressobj(level, zlib.DEFLATED, 31)


def gzip_lines(lines: Iterable[str], level: int = 6) -> bytes:
    """One gzip member holding ``lines``, each followed by a newline."""
    z = compressor(level)
    out: list[bytes] = []
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= _FLUSH_LINES:
            batch.append("")
            out.append(z.compress("\n".join(batch).encode(_UTF8, _KEEP)))
            batch.clear()
    if batch:
        batch.append("")
        out.append(z.compress("\n".join(batch).encode(_UTF8, _KEEP)))
    out.append(z.flush())
    return b"".join(out)


class LineWriter:
    """Appends lines to a local gzip file (level 1: these files are read back once)."""

    def __init__(self, path: Path, level: int = 1) -> None:
        self.path = path
        self.lines = 0
        self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._zip = compressor(level)
        self._batch: list[str] = []

    def add(self, line: str) -> None:
        self._batch.append(line)
        self.lines += 1
        if len(self._batch) >= _FLUSH_LINES:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._batch.append("")
            self._file.write(self._zip.compress("\n".join(self._batch).encode(_UTF8, _KEEP)))
            self._batch.clear()

    def close(self) -> None:
        self._flush()
        self._file.write(self._zip.flush())
        self._file.close()


def iter_blocks(path: Path) -> Iterator[list[str]]:
    """The lines of a (multi-member) gzip file, a block of them at a time."""
    carry = b""
    with open(path, "rb") as f:
        z = zlib.decompressobj(31)
        while True:
            raw = f.read(_BLOCK)
            if not raw:
                break
            while raw:
                data = carry + z.decompress(raw)
                raw = z.unused_data
                if z.eof:  # the next gzip member starts in ``raw``
                    z = zlib.decompressobj(31)
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                carry = data[cut + 1 :]
                yield data[:cut].decode(_UTF8, _KEEP).split("\n")
    if carry:
        raise ValueError(f"{path} ends in the middle of a line (a truncated file)")


def iter_lines(path: Path) -> Iterator[str]:
    for block in iter_blocks(path):
        yield from block
