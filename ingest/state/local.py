"""The folder state store (``file:///path`` or a plain path): a local disk or a shared volume.

Conditional writes without a server:

- ``create`` writes a temporary file, then ``os.link``\\ s it to the final name. ``link``
  fails when the name exists, atomically, on every POSIX filesystem (NFS included), so two
  creators cannot both win and a reader never sees a half-written file.
- ``replace`` takes a per-path lock file (``O_CREAT | O_EXCL``), compares the current
  content's MD5 with the caller's ETag, and ``os.replace``\\ s a temporary file over it. A
  lock older than ``store.lock_stale_seconds`` belongs to a crashed writer and is broken.
- ``put`` is a plain write-temp-then-rename (readers see the old or the new bytes).

The ETag is the MD5 of the content: exact (unlike mtime+size) and the same value S3 gives
a single-part upload, so run.json's shard ETags mean the same thing on both stores.
Blocking file I/O runs in a thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import hashlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, TypeVar

from ingest.errors import ConfigError, IngestError, RetryableError, StateConflict
from ingest.s3.uris import path_from_uri
from ingest.state.base import Blob
from ingest.state.paths import check_path, check_prefix

T = TypeVar("T")

# Filesystems without hard links (some FUSE mounts, SMB) cannot give an atomic create.
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


_COPY_CHUNK = 1024 * 1024


def etag_of(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def folder_from_uri(uri: str) -> Path:
    """The folder of ``file:///path`` (or ``file://localhost/path``) or of a plain path."""
    return path_from_uri(uri, "state store URI")


class LocalStateStore:
    """A folder holding the state; see the module docstring for the write semantics."""

    def __init__(self, uri: str, *, lock_stale_seconds: float = 30.0) -> None:
        self.uri = uri
        self.root = folder_from_uri(uri)
        self._lock_stale = lock_stale_seconds

    def __repr__(self) -> str:
        return f"LocalStateStore({self.uri!r})"

    async def __aenter__(self) -> LocalStateStore:
        await self._run(self._open, "the folder")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        return None

    # -- the StateStore interface -------------------------------------------------------

    async def get(self, path: str) -> Blob | None:
        return await self._run(lambda: self._get(check_path(path)), path)

    async def put(self, path: str, data: bytes) -> str:
        return await self._run(lambda: self._put(check_path(path), data), path)

    async def put_file(self, path: str, f: IO[bytes]) -> str:
        return await self._run(lambda: self._put_file(check_path(path), f), path)

    async def create(self, path: str, data: bytes) -> str:
        return await self._run(lambda: self._create(check_path(path), data), path)

    async def replace(self, path: str, data: bytes, etag: str) -> str:
        return await self._run(lambda: self._replace(check_path(path), data, etag), path)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        for path in await self._run(lambda: self._list(check_prefix(prefix)), prefix or "/"):
            yield path

    async def delete(self, path: str) -> None:
        await self._run(lambda: self._file(check_path(path)).unlink(missing_ok=True), path)

    # -- blocking parts, run in a thread -------------------------------------------------

    async def _run(self, fn: Callable[[], T], what: str) -> T:
        try:
            return await asyncio.to_thread(fn)
        except IngestError:
            raise
        except OSError as exc:
            raise self._translate(exc, what) from exc

    def _translate(self, exc: OSError, what: str) -> IngestError:
        where = f"state store {self.uri}: {what}"
        if isinstance(exc, PermissionError):
            return ConfigError(f"{where}: permission denied; give this process write access")
        if isinstance(exc, (NotADirectoryError, FileExistsError, IsADirectoryError)):
            return ConfigError(f"{where}: {exc.strerror}; the folder holds something else")
        return RetryableError(f"{where}: {exc.strerror or exc}")

    def _open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def _file(self, path: str) -> Path:
        return self.root.joinpath(*path.split("/"))

    def _get(self, path: str) -> Blob | None:
        try:
            data = self._file(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Blob(data=data, etag=etag_of(data))

    def _write_temp(self, final: Path, data: bytes) -> Path:
        """A fully written, synced sibling of ``final`` under a hidden unique name."""
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)  # a full disk must not leave it behind
            raise
        return temp

    def _put(self, path: str, data: bytes) -> str:
        final = self._file(path)
        temp = self._write_temp(final, data)
        try:
            os.replace(temp, final)
        finally:
            temp.unlink(missing_ok=True)
        return etag_of(data)

    def _put_file(self, path: str, f: IO[bytes]) -> str:
        final = self._file(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with open(temp, "wb") as out:
                while chunk := f.read(_COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
        finally:
            temp.unlink(missing_ok=True)
        return digest.hexdigest()

    def _create(self, path: str, data: bytes) -> str:
        final = self._file(path)
        temp = self._write_temp(final, data)
        try:
            os.link(temp, final)
        except FileExistsError:
            raise StateConflict(f"state store {self.uri}: {path} already exists") from None
        except OSError as exc:
            if exc.errno in _NO_LINK_ERRNOS:
                raise ConfigError(
                    f"state store {self.uri}: the filesystem refuses hard links "
                    f"({exc.strerror}), so create-if-absent cannot be atomic; "
                    "use a POSIX filesystem (local disk, NFS) or an s3:// store"
                ) from exc
            raise
        finally:
            temp.unlink(missing_ok=True)
        return etag_of(data)

    def _replace(self, path: str, data: bytes, etag: str) -> str:
        final = self._file(path)
        lock = final.with_name(f".{final.name}.lock")
        self._acquire(lock)
        try:
            try:
                current = final.read_bytes()
            except FileNotFoundError:
                raise StateConflict(
                    f"state store {self.uri}: {path} vanished since it was read"
                ) from None
            if etag_of(current) != etag:
                raise StateConflict(f"state store {self.uri}: {path} changed since it was read")
            temp = self._write_temp(final, data)
            try:
                os.replace(temp, final)
            finally:
                temp.unlink(missing_ok=True)
        finally:
            lock.unlink(missing_ok=True)
        return etag_of(data)

    def _acquire(self, lock: Path) -> None:
        """Hold ``lock``; waits while another writer holds it (only for one small write).

        Trade-off: a crashed writer's lock is broken by age. Two breakers racing on one
        stale lock could, in a window of microseconds, remove a fresh lock; the rename
        below makes the break itself single-winner, which is as close as files get.
        """
        deadline = time.monotonic() + self._lock_stale + 1.0
        stamp = f"{os.getpid()}@{socket.gethostname()} {time.time():.3f}\n".encode()
        lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass
            else:
                try:
                    os.write(fd, stamp)
                finally:
                    os.close(fd)
                return
            try:
                age = time.time() - lock.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again at once
            # A lock dated in the future (a writer with a wrong clock) would never age:
            # more than the stale time ahead counts as stale too.
            if abs(age) > self._lock_stale:
                broken = lock.with_name(f"{lock.name}.{uuid.uuid4().hex}.stale")
                try:
                    os.rename(lock, broken)
                    broken.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
                continue
            if time.monotonic() > deadline:
                raise RetryableError(
                    f"state store {self.uri}: lock {lock.name} stayed held for "
                    f"{self._lock_stale:.0f}s; retry later"
                )
            # A blocking wait in this worker thread, not in the event loop; the holder
            # only reads, compares and renames one small file.
            time.sleep(0.001)

    def _list(self, prefix: str) -> builtins.list[str]:
        base_rel = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._file(base_rel) if base_rel else self.root
        found: builtins.list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith("."):
                    continue  # our temporary and lock files
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if rel.startswith(prefix):
                    found.append(rel)
        found.sort()
        return found
