"""The S3 state store (``s3://bucket/prefix``), with S3's real conditional writes.

``create`` sends ``If-None-Match: *`` and ``replace`` sends ``If-Match: "<etag>"``; S3
answers 412 PreconditionFailed (or 409 ConditionalRequestConflict when two conditional
writes race) to the loser, which becomes :class:`StateConflict`. Every call goes through
the S3 edge (:mod:`ingest.s3`), which translates botocore's errors for the state store:
throttling, 5xx and connection trouble are retryable; a missing bucket or bad credentials
are errors naming the fix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO

from ingest.errors import StateConflict
from ingest.s3.client import ConditionLost, S3Client, S3Config
from ingest.s3.uris import parse_s3_uri
from ingest.state.base import Blob
from ingest.state.paths import check_path, check_prefix


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key prefix without slashes at either end) of ``s3://bucket/prefix``."""
    bucket, prefix = parse_s3_uri(uri, "state store URI")
    return bucket, prefix.strip("/")


class S3StateStore:
    """State under one bucket prefix. Opens its S3 client in ``__aenter__``."""

    def __init__(self, uri: str, config: S3Config | None = None) -> None:
        self.uri = uri
        self.bucket, self.prefix = split_s3_uri(uri)
        self._s3 = S3Client(config or S3Config())

    def __repr__(self) -> str:
        return f"S3StateStore({self.uri!r})"

    async def __aenter__(self) -> S3StateStore:
        await self._s3.client()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._s3.aclose()

    def _key(self, path: str) -> str:
        check_path(path)
        return f"{self.prefix}/{path}" if self.prefix else path

    def _where(self, path: str) -> str:
        return f"state store {self.uri}: {path}"

    # -- the StateStore interface -------------------------------------------------------

    async def get(self, path: str) -> Blob | None:
        found = await self._s3.read(self.bucket, self._key(path), self._where(path))
        return None if found is None else Blob(data=found[0], etag=found[1])

    async def put(self, path: str, data: bytes) -> str:
        return await self._s3.write(self.bucket, self._key(path), data, self._where(path))

    async def put_file(self, path: str, f: IO[bytes]) -> str:
        return await self._s3.write_file(self.bucket, self._key(path), f, self._where(path))

    async def create(self, path: str, data: bytes) -> str:
        try:
            return await self._s3.write(
                self.bucket, self._key(path), data, self._where(path), if_none_match=True
            )
        except ConditionLost as lost:
            raise StateConflict(f"{self._where(path)} exists", code=lost.code) from None

    async def replace(self, path: str, data: bytes, etag: str) -> str:
        try:
            return await self._s3.write(
                self.bucket, self._key(path), data, self._where(path), if_match=etag
            )
        except ConditionLost as lost:
            message = f"{self._where(path)} changed since it was read"
            raise StateConflict(message, code=lost.code) from None

    async def list(self, prefix: str) -> AsyncIterator[str]:
        check_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        cut = len(self.prefix) + 1 if self.prefix else 0
        where = self._where(prefix or "/")
        pages = self._s3.list_pages(self.bucket, full, role="state", where=where)
        async for page in pages:
            for obj in page.get("Contents", ()):
                yield obj["Key"][cut:]  # S3 lists in UTF-8 byte order: sorted

    async def delete(self, path: str) -> None:
        await self._s3.delete(self.bucket, self._key(path), self._where(path))
