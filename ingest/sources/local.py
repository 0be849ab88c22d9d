"""Local folder source: ``file:///path`` or a plain path, recursive, for development and
small jobs.

Keys are paths relative to the root with ``/`` separators, listed in the same order S3
would list them (sorted by key: a directory ``a`` sorts as ``a/``, so ``a.txt`` comes before
``a/x`` and ``a/x`` before ``a0``). The ETag is ``<mtime_ns hex>-<size hex>``: ``open``
compares it with the file on disk, so a file changed since planning fails its item.

Symlinks to files are followed; symlinks to directories are not (no loops, no escaping the
root). Unreadable directories and dangling links are recorded in ``problems`` and skipped.
Directory scans and reads run in a thread so a slow disk does not stall the event loop.
"""

from __future__ import annotations

import collections
import datetime as dt
import fcntl
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from ingest.errors import ConfigError, RetryableError, SourceItemError
from ingest.items import FailureCode, Item
from ingest.s3.uris import path_from_uri
from ingest.sources.base import Batch, in_batches
from ingest.sources.blocking import fire_and_forget, run_blocking
from ingest.sources.records import Problems, iso_utc
from ingest.streams import CHUNK_SIZE, ByteStream

_GONE = FailureCode.SOURCE_GONE.value
_CHANGED = FailureCode.SOURCE_CHANGED.value
_UNREADABLE = FailureCode.SOURCE_UNREADABLE.value


def file_etag(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"


# (name, is_dir, stat of a file or None, error text or None)
_Entry = tuple[str, bool, os.stat_result | None, str | None]


def _scan(directory: Path) -> list[_Entry]:
    """The entries of one directory, sorted S3-style (a directory sorts as ``name/``)."""
    out: list[_Entry] = []
    with os.scandir(directory) as it:
        for entry in it:
            try:
                if entry.is_dir(follow_symlinks=False):
                    out.append((entry.name, True, None, None))
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:  # a dangling symlink, a file vanished mid-scan
                out.append((entry.name, False, None, exc.strerror or str(exc)))
                continue
            if stat.S_ISREG(st.st_mode):
                out.append((entry.name, False, st, None))
    out.sort(key=lambda e: e[0] + "/" if e[1] else e[0])
    return out


class LocalSource:
    """Files under a local directory."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.root = path_from_uri(uri, "source folder")
        if not self.root.is_dir():
            raise ConfigError(
                f"source folder {str(self.root)!r} does not exist or is not a directory; "
                "give an existing folder, s3://bucket/prefix, or a manifest"
            )
        self.problems = Problems()

    def batches(self) -> AsyncIterator[Batch]:
        return in_batches(self.list())

    async def list(self) -> AsyncIterator[Item]:
        # A stack of directory listings, each sorted; memory is one listing per level.
        stack: list[tuple[str, collections.deque[_Entry]]] = [("", await self._scan(""))]
        while stack:
            base, entries = stack[-1]
            if not entries:
                stack.pop()
                continue
            name, is_dir, st, error = entries.popleft()
            key = base + name
            if is_dir:
                try:
                    stack.append((key + "/", await self._scan(key)))
                except OSError as exc:
                    self.problems.add(str(self.root / key), None, exc.strerror or str(exc))
            elif error is not None or st is None:
                self.problems.add(str(self.root / key), None, error or "unreadable")
            else:
                yield Item(
                    key=key,
                    size=st.st_size,
                    etag=file_etag(st),
                    last_modified=iso_utc(dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)),
                )

    async def _scan(self, key: str) -> collections.deque[_Entry]:
        return collections.deque(await run_blocking(_scan, self.root / key))

    def path_of(self, item: Item) -> Path:
        """The file of ``item``, refusing keys that would leave the root (``../``)."""
        path = (self.root / item.key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise SourceItemError(
                f"key {item.key!r} leaves the source folder; refused", code=_UNREADABLE
            )
        return path

    async def open(self, item: Item) -> ByteStream:
        path = self.path_of(item)
        try:
            fd, st = await run_blocking(_open_regular, path)
        except FileNotFoundError:
            raise SourceItemError(f"{path} is gone (deleted since planning?)", code=_GONE) from None
        except OSError as exc:
            raise SourceItemError(
                f"cannot open {path}: {exc.strerror or exc}", code=_UNREADABLE
            ) from None
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise SourceItemError(
                f"{path} is not a regular file any more (a FIFO, device or socket stands "
                "there now); refused: only regular files are read",
                code=_UNREADABLE,
            )
        f = os.fdopen(fd, "rb", buffering=0)
        if item.etag is not None and file_etag(st) != item.etag:
            f.close()
            raise SourceItemError(
                f"{path} changed since planning (mtime or size differs)", code=_CHANGED
            )
        return FileStream(f, st.st_size, str(path), st)

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> LocalSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"LocalSource({str(self.root)!r})"


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading without blocking: a FIFO with no writer would block
    ``open`` itself forever. Non-blocking mode is cleared again for the reads."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _read(f: BinaryIO, n: int) -> bytes:
    """One read of at most ``n`` bytes (a module function: the tests make it hang)."""
    return f.read(n) or b""


class FileStream:
    """An open file as a ByteStream, read chunk by chunk on a daemon thread."""

    def __init__(
        self, f: BinaryIO, size: int, where: str, opened: os.stat_result | None = None
    ) -> None:
        self._f = f
        self.size = size
        self._where = where
        self._opened = opened
        self._reading = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            remaining = self.size
            while remaining > 0:
                self._reading = True
                chunk = await run_blocking(_read, self._f, min(CHUNK_SIZE, remaining))
                self._reading = False
                if not chunk:
                    raise SourceItemError(f"{self._where} shrank while being read", code=_CHANGED)
                remaining -= len(chunk)
                if remaining <= 0:  # before the last chunk goes: a torn body never completes
                    self._check_unchanged()
                yield chunk
        except OSError as exc:
            raise RetryableError(f"reading {self._where} failed: {exc}") from exc
        finally:
            await self.aclose()

    def _check_unchanged(self) -> None:
        """A file rewritten in place while it was read (same size or not) was sent torn:
        its size, mtime or ctime differ from when it was opened."""
        if self._opened is None:
            return
        now = os.fstat(self._f.fileno())
        before = self._opened
        if (now.st_size, now.st_mtime_ns, now.st_ctime_ns) != (
            before.st_size,
            before.st_mtime_ns,
            before.st_ctime_ns,
        ):
            raise SourceItemError(
                f"{self._where} changed during upload (size, mtime or ctime moved while it "
                "was read); not sent: plan again once it is stable",
                code=_CHANGED,
            )

    async def aclose(self) -> None:
        if self._reading:  # cancelled mid-read: the read may never return, never wait on it
            self._reading = False
            fire_and_forget(self._f.close)
        else:
            self._f.close()
