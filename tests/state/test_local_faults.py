"""The folder store under faults: a full disk leaves no temporary files, a lock with a
future mtime is still broken (issue 13, point 16)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from ingest.errors import RetryableError
from ingest.settings import load_settings
from ingest.state import local as local_store
from ingest.state import open_state


async def test_a_lock_with_a_future_mtime_is_broken(tmp_path: Path) -> None:
    settings = load_settings(store={"lock_stale_seconds": 1})
    async with open_state(f"file://{tmp_path}", settings) as store:
        etag = await store.create("runs/r/checkpoints/00000.json", b"v1")
        lock = tmp_path / "runs/r/checkpoints/.00000.json.lock"
        lock.write_text("12345@pod-with-a-wrong-clock\n")
        a_day_ahead = time.time() + 86400
        os.utime(lock, (a_day_ahead, a_day_ahead))
        await store.replace("runs/r/checkpoints/00000.json", b"v2", etag)
        assert not lock.exists()


async def test_a_full_disk_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No real full disk here (mounting a tiny tmpfs needs privileges): fsync fails as
    # a full disk makes it fail, with ENOSPC.
    async with open_state(f"file://{tmp_path}", load_settings()) as store:
        await store.create("runs/r/a.json", b"v1")

        def full(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(local_store.os, "fsync", full)
        for write in (
            lambda: store.put("runs/r/b.json", b"x" * 100),
            lambda: store.create("runs/r/c.json", b"x" * 100),
        ):
            with pytest.raises(RetryableError, match="No space left on device"):
                await write()
        leftovers = [p.name for p in (tmp_path / "runs" / "r").iterdir()]
        assert leftovers == ["a.json"]
