"""An in-memory StateStore with the protocol's conditional-write semantics.

Used where a test needs to interleave writers precisely (zombie races) or count writes;
the folder store (ingest.state.local) covers the same contract on a real filesystem.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import IO

from ingest.errors import StateConflict
from ingest.state.base import Blob


class MemoryStateStore:
    uri = "memory://"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.writes: list[str] = []

    @staticmethod
    def _etag(data: bytes) -> str:
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    async def get(self, path: str) -> Blob | None:
        data = self.objects.get(path)
        return None if data is None else Blob(data, self._etag(data))

    async def put(self, path: str, data: bytes) -> str:
        self.objects[path] = data
        self.writes.append(path)
        return self._etag(data)

    async def put_file(self, path: str, f: IO[bytes]) -> str:
        return await self.put(path, f.read())

    async def create(self, path: str, data: bytes) -> str:
        if path in self.objects:
            raise StateConflict(f"{path} exists")
        return await self.put(path, data)

    async def replace(self, path: str, data: bytes, etag: str) -> str:
        current = self.objects.get(path)
        if current is None or self._etag(current) != etag:
            raise StateConflict(f"{path} changed")
        return await self.put(path, data)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        for path in sorted(self.objects):
            if path.startswith(prefix):
                yield path

    async def delete(self, path: str) -> None:
        self.objects.pop(path, None)

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> MemoryStateStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
