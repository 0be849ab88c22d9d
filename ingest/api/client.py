"""AionClient: one async method per endpoint of the Uploads API, typed answers.

Requests, retries and error classification live in ``api.edge``. Uploads take
:class:`~ingest.api.files.FileSpec` so each attempt re-opens the bytes. A file the API
refuses inside a stream-batch is data in the answer (``rejections``,
``immediate_results[].error``), not an exception.

Usage::

    async with AionClient(settings.api) as api:
        quota = await api.quota_check(file_count=1000)
        result = await api.upload_stream(FileSpec(...), skip_duplicates=True)
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ingest.api.edge import ApiEdge
from ingest.api.files import FileBody, FileSpec
from ingest.api.models import (
    BatchPresignedUrl,
    BatchStatusSummaryResponse,
    BatchUploadConfirmRequest,
    BatchUploadConfirmResponse,
    BatchUploadPrepareRequest,
    BatchUploadPrepareResponse,
    DuplicateCheckRequest,
    DuplicateCheckResponse,
    FileInfo,
    ListUserFilesResponse,
    PresignedUploadRequest,
    PresignedUploadResponse,
    QuotaCheckResponse,
    StreamBatchUploadResponse,
    StreamingUploadResponse,
    UnifiedImageStatusResponse,
    UploadConfirmation,
    UploadConfirmationRequest,
    UploadConfirmationResponse,
    UploadSessionListResponse,
    UploadSessionResultItem,
    UploadSessionResultsResponse,
    UploadSessionStatusResponse,
    UserFile,
)
from ingest.api.multipart import MultipartBody
from ingest.errors import ItemRejected


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _segment(value: str) -> str:
    """An id as one URL path segment (an id with a slash must not change the route)."""
    return urllib.parse.quote(str(value), safe="")


class AionClient(ApiEdge):
    """The Uploads API, one method per endpoint. Use as ``async with``; share one per process."""

    # --- streaming uploads --------------------------------------------------------------

    async def upload_stream(
        self,
        file: FileSpec,
        *,
        title: str | None = None,
        tags: Sequence[str] = (),
        auto_describe: bool = True,
        skip_duplicates: bool = False,
        storage_target: str = "default",
    ) -> StreamingUploadResponse:
        """``POST /user-files/upload/stream``: one file up to 100 MB.

        A refusal of this file (400/413/415/422) raises :class:`ItemRejected`.
        """
        fields = [
            ("auto_describe", _bool(auto_describe)),
            ("skip_duplicates", _bool(skip_duplicates)),
            ("storage_target", storage_target),
        ]
        if title is not None:
            fields.append(("title", title))
        if tags:
            fields.append(("tags", ",".join(tags)))
        body = MultipartBody(fields, [("file", file)])
        return await self._send(
            "POST", "/user-files/upload/stream", StreamingUploadResponse, body=body
        )

    async def upload_stream_batch(
        self,
        files: Sequence[FileSpec],
        *,
        tags: Sequence[str] = (),
        auto_describe: bool = True,
        skip_duplicates: bool = False,
        intent: str = "describe",
        storage_target: str = "default",
    ) -> StreamBatchUploadResponse:
        """``POST /user-files/upload/stream-batch``: several files in one request.

        Per-file refusals come back in the answer's ``rejections``; an error status for
        the whole request (e.g. 413, too many files) raises as for :meth:`upload_stream`.
        """
        if not files:
            raise ValueError("upload_stream_batch needs at least one file")
        fields = [
            ("auto_describe", _bool(auto_describe)),
            ("skip_duplicates", _bool(skip_duplicates)),
            ("intent", intent),
            ("storage_target", storage_target),
        ]
        if tags:
            fields.append(("tags", ",".join(tags)))
        body = MultipartBody(fields, [("files", f) for f in files])
        return await self._send(
            "POST", "/user-files/upload/stream-batch", StreamBatchUploadResponse, body=body
        )

    # --- quota and duplicates -----------------------------------------------------------

    async def quota_check(self, file_count: int) -> QuotaCheckResponse:
        """``GET /uploads/quota-check``: may ``file_count`` more files be uploaded?"""
        return await self._send(
            "GET", "/uploads/quota-check", QuotaCheckResponse, params={"file_count": file_count}
        )

    async def check_duplicates(self, hashes: Sequence[str]) -> DuplicateCheckResponse:
        """``POST /uploads/check-duplicates`` for 1 to 500 SHA-256 hashes (hex)."""
        return await self._send(
            "POST",
            "/uploads/check-duplicates",
            DuplicateCheckResponse,
            json_body=DuplicateCheckRequest(hashes=list(hashes)),
        )

    # --- presigned flow -----------------------------------------------------------------

    async def request_presigned_url(
        self,
        filename: str,
        content_type: str,
        size_bytes: int,
        *,
        idempotency_key: str | None = None,
        storage_target: str = "default",
    ) -> PresignedUploadResponse:
        """``POST /uploads/request-presigned-url``. The same ``idempotency_key`` gives the
        same upload on a re-send."""
        request = PresignedUploadRequest(
            filename=filename,
            content_type=content_type,
            size_bytes=size_bytes,
            idempotency_key=idempotency_key,
            storage_target=storage_target,
        )
        return await self._send(
            "POST", "/uploads/request-presigned-url", PresignedUploadResponse, json_body=request
        )

    async def put_presigned(
        self, target: PresignedUploadResponse | BatchPresignedUrl, file: FileSpec
    ) -> int:
        """Stream ``file`` to a presigned URL (no API key sent); returns the HTTP status.

        Network trouble and 5xx are retried; another refusal (an expired or altered URL)
        raises :class:`ItemRejected`: the run goes on, a later run retries the item.
        """
        headers = dict(target.upload_headers or {})
        headers.setdefault("Content-Type", file.content_type)
        return await self._put(
            target.upload_method or "PUT", target.upload_url, headers, FileBody(file)
        )

    async def confirm_upload(
        self,
        object_key: str,
        size_bytes: int,
        *,
        checksum: str | None = None,
        content_type: str | None = None,
    ) -> UploadConfirmationResponse:
        """``POST /uploads/confirm`` after the presigned PUT."""
        request = UploadConfirmationRequest(
            object_key=object_key,
            size_bytes=size_bytes,
            checksum=checksum,
            content_type=content_type,
        )
        return await self._send(
            "POST", "/uploads/confirm", UploadConfirmationResponse, json_body=request
        )

    async def upload_presigned(
        self,
        file: FileSpec,
        *,
        idempotency_key: str | None = None,
        storage_target: str = "default",
        checksum: str | None = None,
    ) -> UploadConfirmationResponse:
        """The whole presigned flow for one file: request a URL, PUT, confirm."""
        target = await self.request_presigned_url(
            file.filename,
            file.content_type,
            file.size,
            idempotency_key=idempotency_key,
            storage_target=storage_target,
        )
        try:
            await self.put_presigned(target, file)
        except ItemRejected as exc:
            # 409 to a re-requested URL: the upload behind this idempotency key was already
            # PUT and confirmed (a re-send after a crash between confirm and checkpoint).
            # Confirming again answers with that upload; anything else is a real refusal.
            if exc.status != 409 or idempotency_key is None:
                raise
        return await self.confirm_upload(
            target.object_key, file.size, checksum=checksum, content_type=file.content_type
        )

    async def batch_prepare(
        self, files: Sequence[FileInfo], *, intent: str = "describe"
    ) -> BatchUploadPrepareResponse:
        """``POST /uploads/batch-prepare``: presigned targets for 1 to 5 files."""
        request = BatchUploadPrepareRequest(files=list(files), intent=intent)
        return await self._send(
            "POST", "/uploads/batch-prepare", BatchUploadPrepareResponse, json_body=request
        )

    async def batch_confirm(
        self,
        batch_id: str,
        confirmations: Sequence[UploadConfirmation],
        *,
        auto_process: bool = True,
    ) -> BatchUploadConfirmResponse:
        """``POST /uploads/batch-confirm`` after the batch's PUTs."""
        request = BatchUploadConfirmRequest(
            batch_id=batch_id, confirmations=list(confirmations), auto_process=auto_process
        )
        return await self._send(
            "POST", "/uploads/batch-confirm", BatchUploadConfirmResponse, json_body=request
        )

    async def batch_status(self, batch_id: str) -> BatchStatusSummaryResponse:
        """``GET /uploads/batch/{batch_id}/status``."""
        return await self._send(
            "GET", f"/uploads/batch/{_segment(batch_id)}/status", BatchStatusSummaryResponse
        )

    async def upload_status(self, image_id: str) -> UnifiedImageStatusResponse:
        """``GET /uploads/status/{image_id}``."""
        return await self._send(
            "GET", f"/uploads/status/{_segment(image_id)}", UnifiedImageStatusResponse
        )

    # --- sessions -----------------------------------------------------------------------

    async def session_status(self, session_id: str) -> UploadSessionStatusResponse:
        """``GET /uploads/sessions/{session_id}/status``."""
        return await self._send(
            "GET", f"/uploads/sessions/{_segment(session_id)}/status", UploadSessionStatusResponse
        )

    async def session_results(
        self, session_id: str, *, offset: int = 0, limit: int = 100, include_failed: bool = True
    ) -> UploadSessionResultsResponse:
        """One page of ``GET /uploads/sessions/{session_id}/results`` (``limit`` <= 500)."""
        return await self._send(
            "GET",
            f"/uploads/sessions/{_segment(session_id)}/results",
            UploadSessionResultsResponse,
            params={"offset": offset, "limit": limit, "include_failed": _bool(include_failed)},
        )

    async def iter_session_results(
        self, session_id: str, *, page_size: int = 100, include_failed: bool = True
    ) -> AsyncIterator[UploadSessionResultItem]:
        """Every result of a session, following the pages."""
        offset = 0
        while True:
            page = await self.session_results(
                session_id, offset=offset, limit=page_size, include_failed=include_failed
            )
            for item in page.results:
                yield item
            offset += len(page.results)
            # An empty page that claims more would loop forever: trust the data, not the flag.
            if not page.has_more or not page.results:
                return

    async def cancel_session(self, session_id: str) -> UploadSessionStatusResponse:
        """``POST /uploads/sessions/{session_id}/cancel``."""
        return await self._send(
            "POST", f"/uploads/sessions/{_segment(session_id)}/cancel", UploadSessionStatusResponse
        )

    async def list_sessions(
        self,
        *,
        status: str | None = None,
        upload_method: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> UploadSessionListResponse:
        """``GET /uploads/sessions`` (``limit`` <= 100)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        if upload_method is not None:
            params["upload_method"] = upload_method
        return await self._send(
            "GET", "/uploads/sessions", UploadSessionListResponse, params=params
        )

    # --- files held ---------------------------------------------------------------------

    async def list_user_files(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "asc",
        ids: Sequence[str] = (),
        date_from: str | None = None,
    ) -> ListUserFilesResponse:
        """One page of ``GET /user-files`` (``limit`` <= 100).

        Sorted oldest first by default, so files uploaded while paging land at the end
        instead of shifting the pages already read. ``date_from`` (ISO 8601) leaves out
        files created before it.
        """
        params: dict[str, Any] = {
            "limit": limit,
            "offset": offset,
            "sort_by": sort_by,
            "sort_order": sort_order,
        }
        if ids:
            params["ids"] = list(ids)
        if date_from is not None:
            params["date_from"] = date_from
        return await self._send("GET", "/user-files", ListUserFilesResponse, params=params)

    async def list_all_user_files(self, *, page_size: int = 100) -> AsyncIterator[UserFile]:
        """Every file the server holds, following the pages."""
        offset = 0
        while True:
            page = await self.list_user_files(limit=page_size, offset=offset)
            for f in page.files:
                yield f
            offset += len(page.files)
            if not page.has_more or not page.files:
                return
