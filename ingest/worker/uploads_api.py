"""The Uploads API as the worker uses it: exactly the calls the pipeline makes.

The worker types against this protocol, not against :class:`~ingest.api.client.AionClient`,
so its tests pass small in-memory fakes (``tests/worker/fakes.py``) that type-check without
ignores, and the worker's dependence on the API is written down in one place. It lives on
the worker's side (the consumer's view; ``worker`` may import ``api``, never the other
way): ``AionClient`` satisfies it structurally, which mypy checks where ``work()`` hands the
client to the :class:`~ingest.worker.uploads.Uploader`.

Keyword arguments are the ones the worker passes; an implementation may give them defaults.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from ingest.api.files import FileSpec
from ingest.api.models import (
    DuplicateCheckResponse,
    ListUserFilesResponse,
    QuotaCheckResponse,
    StreamBatchUploadResponse,
    StreamingUploadResponse,
    UploadConfirmationResponse,
    UploadSessionResultItem,
)


class UploadsApi(Protocol):
    """The six endpoints (or flows) a worker calls. Errors are the project's tree:
    RetryableError after retries ran out, FatalError (bad key, quota), ItemRejected for a
    refused file (a refusal inside a stream-batch is data in the answer instead)."""

    async def check_duplicates(self, hashes: Sequence[str]) -> DuplicateCheckResponse:
        """Which of these SHA-256 hashes (hex, 1 to 500) the API already holds."""
        ...

    async def quota_check(self, file_count: int) -> QuotaCheckResponse:
        """May ``file_count`` more files be uploaded this month, and how many may."""
        ...

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
        """One file up to 100 MB."""
        ...

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
        """Several small files in one request; per-file refusals in ``rejections``."""
        ...

    async def upload_presigned(
        self,
        file: FileSpec,
        *,
        idempotency_key: str | None,
        storage_target: str,
        checksum: str | None,
    ) -> UploadConfirmationResponse:
        """Request a URL, PUT, confirm; the same idempotency key gives the same upload."""
        ...

    async def list_user_files(
        self, *, limit: int = 100, ids: Sequence[str] = ()
    ) -> ListUserFilesResponse:
        """``GET /user-files?ids=...``: the files with these ids (their ``created_at``);
        asked only to judge a re-send's "skipped" answer (``ingest/worker/intents.py``)."""
        ...

    def iter_session_results(
        self, session_id: str, *, page_size: int
    ) -> AsyncIterator[UploadSessionResultItem]:
        """Every per-file result of a stream-batch session, following the pages."""
        ...
