"""Small in-memory stand-ins for the source and the API, for pipeline unit tests.

They implement the worker's two edges, :class:`~ingest.sources.base.Source` and
:class:`~ingest.worker.uploads_api.UploadsApi`, so they are passed where the real parts go
without type ignores. The real parts (moto's S3 through ``ingest.sources``, the sandbox
through ``AionClient``) run in the route, kill, fault and zombie tests; these fakes serve
the fine-grained cases: exact per-file answers, failure injection by ordinal, an API that
never answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ingest.api.files import FileSpec
from ingest.api.models import (
    DuplicateCheckResponse,
    ListUserFilesResponse,
    QuotaCheckResponse,
    StreamBatchFileResult,
    StreamBatchUploadResponse,
    StreamingUploadResponse,
    UploadConfirmationResponse,
    UploadSessionResultItem,
)
from ingest.errors import FatalError, ItemRejected, SourceItemError
from ingest.items import Item
from ingest.sources.records import Problems
from ingest.streams import BytesStream, ByteStream


class FakeSource:
    """Objects by key, in memory; a key not held is gone from the source."""

    uri = "memory://"

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.opened: list[str] = []
        self.problems = Problems()

    def list(self) -> AsyncIterator[Item]:
        raise NotImplementedError

    async def open(self, item: Item) -> ByteStream:
        self.opened.append(item.key)
        if item.key not in self.objects:
            raise SourceItemError(f"{item.key}: gone from the source since planning")
        return BytesStream(self.objects[item.key])

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> FakeSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def _read(spec: FileSpec) -> bytes:
    stream = await spec.open()
    try:
        return b"".join([c async for c in stream])
    finally:
        await stream.aclose()


class FakeApi:
    """Holds files by SHA-256; ``skip_duplicates`` answers skipped with the held id."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}  # sha256 -> file
        self.requests: list[str] = []
        self.sessions: dict[str, list[UploadSessionResultItem]] = {}
        self.fatal = False

    def _store(self, name: str, data: bytes, skip: bool, **meta: Any) -> tuple[str, bool]:
        if self.fatal:
            raise FatalError("invalid API key", status=401)
        if not data:
            raise ItemRejected("empty file", status=422)
        h = hashlib.sha256(data).hexdigest()
        if h in self.files and skip:
            return self.files[h]["id"], True
        fid = str(uuid.uuid4())
        created = dt.datetime.now(dt.UTC).isoformat()
        self.files[h] = {"id": fid, "filename": name, "size": len(data), "created": created}
        self.files[h].update(meta)
        return fid, False

    async def list_user_files(
        self, *, limit: int = 100, ids: Sequence[str] = ()
    ) -> ListUserFilesResponse:
        self.requests.append(f"list:{len(ids)}")
        held = [f for f in self.files.values() if f["id"] in set(ids)][:limit]
        files = [{"id": f["id"], "size_bytes": f["size"], "created_at": f["created"]} for f in held]
        return ListUserFilesResponse.model_validate(
            {"files": files, "total_count": len(files), "has_more": False}
        )

    async def upload_stream(
        self,
        file: FileSpec,
        *,
        title: str | None,
        tags: Sequence[str],
        auto_describe: bool,
        skip_duplicates: bool,
        storage_target: str,
    ) -> StreamingUploadResponse:
        self.requests.append("stream")
        fid, skipped = self._store(file.filename, await _read(file), skip_duplicates, title=title)
        return StreamingUploadResponse(
            image_id=fid,
            status="skipped" if skipped else "completed",
            skipped=skipped,
            skipped_existing_image_id=fid if skipped else None,
        )

    async def upload_stream_batch(
        self,
        files: Sequence[FileSpec],
        *,
        tags: Sequence[str],
        auto_describe: bool,
        skip_duplicates: bool,
        intent: str,
        storage_target: str,
    ) -> StreamBatchUploadResponse:
        self.requests.append(f"batch:{len(files)}")
        results = []
        rejections = []
        datas = [await _read(f) for f in files]  # a broken source breaks the whole request
        for i, (spec, data) in enumerate(zip(files, datas, strict=True)):
            try:
                fid, skipped = self._store(spec.filename, data, skip_duplicates)
            except ItemRejected as exc:
                rejections.append({"filename": spec.filename, "index": i, "reason": exc.message})
                continue
            results.append((spec.filename, fid, skipped))
        sid = str(uuid.uuid4())
        self.sessions[sid] = [
            UploadSessionResultItem(
                filename=n, image_id=f, status="skipped" if s else "completed", object_key="k"
            )
            for n, f, s in results
        ]
        inline = None
        if len(files) <= 5:
            inline = [
                StreamBatchFileResult(
                    filename=n, image_id=f, status="skipped" if s else "completed", skipped=s
                )
                for n, f, s in results
            ]
        return StreamBatchUploadResponse.model_validate(
            {
                "session_id": sid,
                "total_files": len(files),
                "accepted_files": len(results),
                "rejected_files": len(rejections),
                "status": "completed",
                "immediate_results": inline,
                "rejections": rejections or None,
            }
        )

    async def iter_session_results(
        self, session_id: str, *, page_size: int
    ) -> AsyncIterator[UploadSessionResultItem]:
        self.requests.append("session-results")
        for r in self.sessions[session_id]:
            yield r

    async def quota_check(self, file_count: int) -> QuotaCheckResponse:
        self.requests.append(f"quota:{file_count}")
        return QuotaCheckResponse(can_proceed=True, requested=file_count)

    async def check_duplicates(self, hashes: Sequence[str]) -> DuplicateCheckResponse:
        self.requests.append(f"check:{len(hashes)}")
        dup = [h for h in hashes if h in self.files]
        return DuplicateCheckResponse(duplicates=dup, unique=[h for h in hashes if h not in dup])

    async def upload_presigned(
        self,
        file: FileSpec,
        *,
        idempotency_key: str | None,
        storage_target: str,
        checksum: str | None,
    ) -> UploadConfirmationResponse:
        self.requests.append("presigned")
        fid, _ = self._store(file.filename, await _read(file), True, key=idempotency_key)
        return UploadConfirmationResponse(confirmed=True, object_key="k", upload_id=fid)
