"""The start-up proof that a store really honours conditional writes.

Not every S3-compatible server does: ``rclone serve s3`` accepts ``If-None-Match: *`` and
silently overwrites. A store like that would let a zombie pod overwrite a newer checkpoint
and two planners both "win" a run, so we refuse to start on it rather than find out later.
Costs four small requests (create, create again, replace with a wrong ETag, delete).
"""

from __future__ import annotations

import uuid

from ingest.errors import ConfigError, StateConflict
from ingest.state.base import StateStore


async def verify_conditional_writes(store: StateStore) -> None:
    """ConfigError unless a second create and a stale replace of one object are refused."""
    path = f"_probe/{uuid.uuid4().hex}"
    fix = (
        "use a store that honours conditional writes (AWS S3, MinIO, moto, a POSIX folder), "
        "or set INGEST_STORE__VERIFY_CONDITIONAL_WRITES=false at your own risk"
    )
    await store.create(path, b"first")
    try:
        try:
            await store.create(path, b"second")
        except StateConflict:
            pass
        else:
            raise ConfigError(
                f"state store {store.uri} ignores If-None-Match "
                f"(a second create-if-absent of {path} succeeded); {fix}"
            )
        try:
            await store.replace(path, b"third", "0" * 32)  # not the MD5 of b"first"
        except StateConflict:
            pass
        else:
            raise ConfigError(
                f"state store {store.uri} ignores If-Match "
                f"(a replace with a wrong ETag of {path} succeeded); {fix}"
            )
    finally:
        await store.delete(path)
