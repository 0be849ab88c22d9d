"""What the sandbox holds: files, upload sessions, presigned uploads, idempotency, quota.

Everything lives in memory and is touched only from the server's event loop, so no locks.
With ``--store disk`` the bytes of each file go to ``<data_dir>/objects/<image_id>`` and
the file records are appended to ``<data_dir>/files.jsonl``, reloaded at start, so a
staging sandbox keeps its files (and its duplicate detection) across restarts. Sessions,
presigned uploads and the monthly usage counter are not persisted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Any

#: every key shares one tenant: the sandbox models one organisation
TENANT_ID = "00000000-0000-4000-8000-000000000001"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass
class StoredFile:
    id: str
    filename: str
    title: str | None
    size_bytes: int
    sha256: str
    format: str
    content_type: str
    media_type: str
    document_type: str | None
    tags: list[str]
    object_key: str
    upload_method: str  # STREAMING | PRESIGNED
    created_at: dt.datetime
    auto_describe: bool = True
    storage_target: str = "default"
    session_id: str | None = None
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["created_at"] = iso(self.created_at)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StoredFile:
        doc = dict(doc)
        doc["created_at"] = dt.datetime.fromisoformat(doc["created_at"].replace("Z", "+00:00"))
        return cls(**doc)


@dataclasses.dataclass
class SessionResult:
    filename: str
    image_id: str
    object_key: str
    status: str  # completed | failed | skipped
    created_at: dt.datetime
    index: int
    processing_time_ms: float | None = None
    error: str | None = None
    retryable: bool = False
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Session:
    id: str
    upload_method: str  # streaming | presigned
    total_files: int
    created_at: dt.datetime
    status: str = "pending"
    completed_at: dt.datetime | None = None
    results: list[SessionResult] = dataclasses.field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def pending(self) -> int:
        return max(0, self.total_files - len(self.results))

    @property
    def progress(self) -> float:
        if self.total_files == 0:
            return 100.0
        return round(100.0 * len(self.results) / self.total_files, 2)


@dataclasses.dataclass
class Presign:
    """One presigned upload: what was declared, what arrived, what it became."""

    token: str
    object_key: str
    filename: str
    content_type: str
    size_bytes: int
    expires_at: dt.datetime
    storage_target: str
    batch_id: str | None = None
    file_index: int = 0
    received_size: int | None = None
    sha256: str | None = None
    head: bytes = b""
    path: Path | None = None
    image_id: str | None = None
    confirm_answer: dict[str, Any] | None = None


class Store:
    """The sandbox's state; ``reset()`` empties it (the admin endpoint and the fixture)."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        if data_dir is not None:
            (data_dir / "objects").mkdir(parents=True, exist_ok=True)
        self.reset(delete_disk=False)
        if data_dir is not None:
            self._load()

    def reset(self, delete_disk: bool = True) -> None:
        if delete_disk and self.data_dir is not None:
            for path in (self.data_dir / "objects").iterdir():
                path.unlink(missing_ok=True)
            (self.data_dir / "files.jsonl").unlink(missing_ok=True)
        self.files: dict[str, StoredFile] = {}
        self.by_hash: dict[str, str] = {}
        self.sessions: dict[str, Session] = {}
        self.presigns: dict[str, Presign] = {}  # by object_key
        self.presign_tokens: dict[str, str] = {}  # token -> object_key
        self.idempotency: dict[str, tuple[Any, dict[str, Any]]] = {}
        self.usage = 0
        self._seq = 0

    def _load(self) -> None:
        assert self.data_dir is not None
        index = self.data_dir / "files.jsonl"
        if not index.exists():
            return
        with index.open() as fh:
            for line in fh:
                if line.strip():
                    self._index(StoredFile.from_json(json.loads(line)))

    def _index(self, f: StoredFile) -> None:
        self._seq += 1
        f.seq = self._seq
        self.files[f.id] = f
        self.by_hash.setdefault(f.sha256, f.id)

    def object_path(self, image_id: str) -> Path | None:
        return None if self.data_dir is None else self.data_dir / "objects" / image_id

    def add_file(self, f: StoredFile, temp_path: Path | None) -> None:
        """Commit one file: move its bytes into place, index it, count it against quota."""
        final = self.object_path(f.id)
        if temp_path is not None and final is not None:
            os.replace(temp_path, final)
        self._index(f)
        self.usage += 1
        if self.data_dir is not None:
            with (self.data_dir / "files.jsonl").open("a") as fh:
                fh.write(json.dumps(f.to_json()) + "\n")

    def duplicate_of(self, sha256: str) -> StoredFile | None:
        image_id = self.by_hash.get(sha256.lower())
        return None if image_id is None else self.files.get(image_id)

    def new_session(self, upload_method: str, total: int, session_id: str | None = None) -> Session:
        s = Session(session_id or str(uuid.uuid4()), upload_method, total, now())
        self.sessions[s.id] = s
        return s

    def idempotent(self, scope: str, key: str | None, fingerprint: Any) -> dict[str, Any] | None:
        """The earlier answer to ``key`` when the request matches; raises on a mismatch."""
        if key is None:
            return None
        seen = self.idempotency.get(f"{scope}:{key}")
        if seen is None:
            return None
        if seen[0] != fingerprint:
            raise IdempotencyConflict(key)
        return seen[1]

    def remember(
        self, scope: str, key: str | None, fingerprint: Any, answer: dict[str, Any]
    ) -> None:
        if key is not None:
            self.idempotency[f"{scope}:{key}"] = (fingerprint, answer)

    def remaining(self, limit: int | None) -> int | None:
        return None if limit is None else max(0, limit - self.usage)


class IdempotencyConflict(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
