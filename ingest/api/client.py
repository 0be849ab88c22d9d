"""AionClient: one async method per endpoint of the Uploads API, typed answers.

Every call goes through :meth:`AionClient._send`, the single edge where HTTP becomes the
project's vocabulary: a fresh ``X-Request-ID`` per attempt, the ``Authorization`` header
added per request (never a client default, so it cannot follow a presigned URL to S3),
transport failures and error answers classified by ``api.errors``, retries by
``api.retry.RetryPolicy``. Uploads take :class:`~ingest.api.files.FileSpec` so each
attempt re-opens the bytes. A file the API refuses inside a stream-batch is data in the
answer (``rejections``, ``immediate_results[].error``), not an exception.

Usage::

    async with AionClient(settings.api) as api:
        quota = await api.quota_check(file_count=1000)
        result = await api.upload_stream(FileSpec(...), skip_duplicates=True)
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import httpx
import pydantic

from ingest.api.errors import ApiErrorInfo, classify, parse_error_body, parse_retry_after
from ingest.api.files import FileBody, FileSpec
from ingest.api.models import (
    ApiModel,
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
from ingest.api.retry import RetryPolicy
from ingest.api.transport import build_http_client, describe_transport_error
from ingest.errors import ConfigError, IngestError, ItemRejected, RetryableError
from ingest.logs import redact_url, register_secret
from ingest.settings import ApiSettings

M = TypeVar("M", bound=ApiModel)
log = logging.getLogger("ingest.api")

Body = MultipartBody | FileBody

# Network failures an engine may raise as its own types (httpx-aiohttp maps most of
# aiohttp's to httpx's, not all): all of them mean "try again".
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TransportError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _segment(value: str) -> str:
    """An id as one URL path segment (an id with a slash must not change the route)."""
    return urllib.parse.quote(str(value), safe="")


class AionClient:
    """The Uploads API, one method per endpoint. Use as ``async with``; share one per process.

    ``transport`` replaces the HTTP engine (tests); ``policy`` the retry policy (tests pass
    one with a fake ``sleep``/``clock``).
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        if settings.key is None or not settings.key.get_secret_value():
            raise ConfigError(
                "no API key: set AIONVISION_API_KEY (or INGEST_API__KEY) to your Aionvision key"
            )
        self._key = settings.key.get_secret_value()
        register_secret(self._key)
        self.base_url = settings.base_url.rstrip("/")
        self.policy = policy or RetryPolicy.from_settings(settings)
        self._http = build_http_client(settings, transport=transport)

    def __repr__(self) -> str:
        return f"AionClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> AionClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # --- the edge ---------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        params: Mapping[str, Any] | None = None,
        json_body: pydantic.BaseModel | None = None,
        body: MultipartBody | None = None,
    ) -> M:
        """Call ``path`` with retries and return its answer as ``model``."""
        url = self.base_url + path

        async def attempt(n: int) -> M:
            request_id = uuid.uuid4().hex
            headers = {
                "Authorization": f"Bearer {self._key}",
                "X-Request-ID": request_id,
                "Accept": "application/json",
            }
            content: Any = None
            if json_body is not None:
                headers["Content-Type"] = "application/json"
                content = json_body.model_dump_json(exclude_none=True).encode()
            elif body is not None:
                headers.update(body.headers())
                content = body
            response = await self._exchange(
                method,
                url,
                path,
                request_id,
                headers=headers,
                params=params,
                content=content,
                body=body,
            )
            if response.status_code >= 400:
                raise self._error(response, path, request_id)
            try:
                result = model.model_validate_json(response.content)
            except pydantic.ValidationError as exc:
                raise RetryableError(
                    f"unexpected answer from {path} (HTTP {response.status_code}): "
                    f"{exc.error_count()} field(s) do not match the API's documented shape",
                    request_id=request_id,
                ) from None
            result._attempts = n
            return result

        return await self.policy.run(attempt, what=f"{method} {path}")

    async def _exchange(
        self,
        method: str,
        url: str,
        shown: str,
        request_id: str,
        *,
        headers: dict[str, str],
        params: Mapping[str, Any] | None = None,
        content: Any = None,
        body: Body | None = None,
    ) -> httpx.Response:
        """One HTTP round trip; network failures become :class:`RetryableError`.

        ``shown`` is how the target appears in messages (a path, or a redacted URL).
        """
        started = time.monotonic()
        try:
            response = await self._http.request(
                method, url, params=params, content=content, headers=headers
            )
        except _NETWORK_ERRORS as exc:
            if body is not None and body.error is not None:
                raise body.error from None  # the source failed, not the network
            raise RetryableError(
                f"{describe_transport_error(exc)} at {shown}; retrying", request_id=request_id
            ) from None
        except Exception:
            if body is not None and body.error is not None:
                raise body.error from None
            raise
        log.debug(
            "%s %s -> %d in %.0f ms",
            method,
            shown,
            response.status_code,
            (time.monotonic() - started) * 1000,
            extra={"request_id": request_id},
        )
        return response

    def _error(self, response: httpx.Response, path: str, request_id: str) -> IngestError:
        info = parse_error_body(response.content, response.headers.get("content-type"))
        retry_after = parse_retry_after(response.headers.get("retry-after"), self.policy.clock())
        error = classify(
            response.status_code,
            info,
            endpoint=path,
            request_id=request_id,
            retry_after=retry_after,
        )
        log.debug("error from %s: %s", path, error, extra={"request_id": request_id})
        return error

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
        shown = redact_url(target.upload_url)
        body = FileBody(file)

        async def attempt(n: int) -> int:
            request_id = uuid.uuid4().hex
            headers = dict(target.upload_headers or {})
            headers.setdefault("Content-Type", file.content_type)
            headers["Content-Length"] = str(body.content_length)
            response = await self._exchange(
                target.upload_method or "PUT",
                target.upload_url,
                shown,
                request_id,
                headers=headers,
                content=body,
                body=body,
            )
            if response.status_code >= 400:
                raise _storage_error(response, shown, request_id)
            return response.status_code

        return await self.policy.run(attempt, what=f"PUT {shown}")

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
        await self.put_presigned(target, file)
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
    ) -> ListUserFilesResponse:
        """One page of ``GET /user-files`` (``limit`` <= 100).

        Sorted oldest first by default, so files uploaded while paging land at the end
        instead of shifting the pages already read.
        """
        params: dict[str, Any] = {
            "limit": limit,
            "offset": offset,
            "sort_by": sort_by,
            "sort_order": sort_order,
        }
        if ids:
            params["ids"] = list(ids)
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


_XML_TAG = re.compile(r"<(Code|Message)>([^<]{0,200})</\1>")


def _storage_error(response: httpx.Response, shown: str, request_id: str) -> IngestError:
    """The object store's refusal of a presigned PUT (S3 answers in XML)."""
    found = dict(_XML_TAG.findall(response.text[:4000]))
    status = response.status_code
    said = f": {found['Code']}" if "Code" in found else ""
    if "Message" in found:
        said += f" ({found['Message']})"
    if status in {408, 429} or status >= 500:
        info = ApiErrorInfo(code=found.get("Code"), message=found.get("Message"))
        return classify(status, info, endpoint=f"PUT {shown}", request_id=request_id)
    return ItemRejected(
        f"the storage refused the upload to {shown}{said}; the presigned URL may have "
        "expired: the item fails now and a rerun uploads it",
        status=status,
        code=found.get("Code"),
        request_id=request_id,
    )
