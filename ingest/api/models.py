"""Typed responses (and request bodies) of the Uploads API.

Shapes follow the user's document (``uploads-api.md``) first and the public OpenAPI spec
second. Responses tolerate what a newer server may add (``extra="allow"``) and what the
document leaves out: only the fields the pipeline relies on are required, the rest default.
Ids stay strings: the server's UUIDs are opaque to us, and a stricter type would turn a
harmless format change into a failed run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class ApiModel(BaseModel):
    """Base of every response: unknown fields are kept, never an error."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    _attempts: int = PrivateAttr(default=1)

    @property
    def attempts(self) -> int:
        """How many HTTP attempts it took to get this response (1 without retries)."""
        return self._attempts


class RequestModel(BaseModel):
    """Base of request bodies: a typo in a field name is a bug, so it is refused."""

    model_config = ConfigDict(extra="forbid")


# --- streaming uploads -----------------------------------------------------------------


class StreamingUploadResponse(ApiModel):
    """``POST /user-files/upload/stream``. ``skipped`` with the existing id for duplicates."""

    image_id: str
    object_key: str | None = None
    upload_method: str | None = None
    status: str
    processing_time_ms: float | None = None
    s3_upload_completed: bool | None = None
    variants_queued: bool | None = None
    description_queued: bool | None = None
    skipped: bool = False
    skipped_existing_image_id: str | None = None
    storage_target: str = "default"
    media_type: str | None = None
    document_type: str | None = None
    text_extraction_status: str | None = None


class StreamBatchFileResult(ApiModel):
    """One file of a stream-batch answered inline (batches of 5 files or fewer)."""

    image_id: str | None = None
    filename: str
    object_key: str | None = None
    status: str
    processing_time_ms: float | None = None
    skipped: bool = False
    skipped_existing_image_id: str | None = None
    error: str | None = None
    media_type: str | None = None
    document_type: str | None = None
    storage_target: str = "default"


class FileRejection(ApiModel):
    """A file of a stream-batch the server refused up front (data, not an exception)."""

    filename: str
    index: int | None = None
    reason: str
    retryable: bool = False


class StreamBatchUploadResponse(ApiModel):
    """``POST /user-files/upload/stream-batch``."""

    session_id: str
    total_files: int
    accepted_files: int
    rejected_files: int = 0
    status: str
    immediate_results: list[StreamBatchFileResult] | None = None
    status_url: str | None = None
    websocket_channel: str | None = None
    rejections: list[FileRejection] | None = None


# --- quota, duplicates ------------------------------------------------------------------


class QuotaCheckResponse(ApiModel):
    """``GET /uploads/quota-check``; ``available``/``monthly_limit`` are None when unlimited."""

    can_proceed: bool
    requested: int | None = None
    available: int | None = None
    monthly_limit: int | None = None
    current_usage: int | None = None
    message: str | None = None


class DuplicateCheckRequest(RequestModel):
    hashes: list[str]


class DuplicateCheckResponse(ApiModel):
    """``POST /uploads/check-duplicates``: the hashes split into held and new."""

    duplicates: list[str] = Field(default_factory=list)
    unique: list[str] = Field(default_factory=list)


# --- presigned flow ---------------------------------------------------------------------


class PresignedUploadRequest(RequestModel):
    filename: str
    content_type: str
    size_bytes: int
    idempotency_key: str | None = None
    storage_target: str = "default"


class PresignedUploadResponse(ApiModel):
    """``POST /uploads/request-presigned-url``. ``upload_url`` is a secret: never log it."""

    upload_url: str = Field(repr=False)
    upload_method: str = "PUT"
    upload_headers: dict[str, str] | None = None
    upload_fields: dict[str, Any] | None = None
    object_key: str
    expires_at: str | None = None
    max_size_bytes: int | None = None
    storage_target: str = "default"


class UploadConfirmationRequest(RequestModel):
    object_key: str
    size_bytes: int
    checksum: str | None = None
    content_type: str | None = None


class UploadConfirmationResponse(ApiModel):
    """``POST /uploads/confirm``."""

    confirmed: bool
    object_key: str
    storage_path: str | None = None
    upload_id: str | None = None


class FileInfo(RequestModel):
    """One file of a ``batch-prepare`` request."""

    filename: str
    content_type: str
    size_bytes: int
    idempotency_key: str | None = None
    storage_target: str = "default"


class BatchUploadPrepareRequest(RequestModel):
    files: list[FileInfo]
    intent: str = "describe"


class BatchPresignedUrl(ApiModel):
    """One file's upload target in a ``batch-prepare`` answer. ``upload_url`` is secret."""

    file_index: int
    filename: str
    image_id: str | None = None
    object_key: str
    upload_url: str = Field(repr=False)
    upload_method: str = "PUT"
    upload_headers: dict[str, str] | None = None
    upload_fields: dict[str, Any] | None = None
    expires_at: str | None = None


class BatchUploadPrepareResponse(ApiModel):
    """``POST /uploads/batch-prepare`` (1 to 5 files)."""

    batch_id: str
    presigned_urls: list[BatchPresignedUrl]
    total_size_bytes: int | None = None
    estimated_time_seconds: int | None = None
    upload_plan: dict[str, Any] | None = None


class UploadConfirmation(RequestModel):
    """One file's outcome of the direct upload, reported in ``batch-confirm``."""

    object_key: str
    file_size: int
    success: bool = True
    checksum: str | None = None
    error_message: str | None = None
    media_type: str | None = None


class BatchUploadConfirmRequest(RequestModel):
    batch_id: str
    confirmations: list[UploadConfirmation]
    auto_process: bool = True


class BatchUploadConfirmResponse(ApiModel):
    """``POST /uploads/batch-confirm``."""

    batch_id: str
    successful_uploads: int
    failed_uploads: int
    processing_status: str | None = None
    message: str | None = None
    failed_files: list[str] | None = None
    stored_images: list[dict[str, Any]] = Field(default_factory=list)


class BatchStatusCounts(ApiModel):
    total: int = 0
    queued: int = 0
    uploading: int = 0
    confirming: int = 0
    processing: int = 0
    completed: int = 0
    partially_completed: int = 0
    failed: int = 0
    stuck: int = 0


class BatchStatusSummaryResponse(ApiModel):
    """``GET /uploads/batch/{batch_id}/status``."""

    batch_id: str
    overall_status: str
    completion_percentage: float = 0.0
    counts: BatchStatusCounts = Field(default_factory=BatchStatusCounts)
    tenant_id: str | None = None
    error_summary: dict[str, Any] | None = None
    created_at: str | None = None
    last_activity_at: str | None = None


class UnifiedImageStatusResponse(ApiModel):
    """``GET /uploads/status/{image_id}``."""

    image_id: str
    unified_status: str
    tenant_id: str | None = None
    batch_id: str | None = None
    is_terminal: bool = False
    is_stuck: bool = False
    error_message: str | None = None
    retry_count: int = 0
    component_statuses: dict[str, Any] | None = None
    created_at: str | None = None
    completed_at: str | None = None


# --- sessions ---------------------------------------------------------------------------


class FileResultSummary(ApiModel):
    filename: str
    image_id: str | None = None
    status: str
    description: str | None = None
    error_message: str | None = None


class FileErrorSummary(ApiModel):
    filename: str
    error: str
    retryable: bool = False
    index: int | None = None


class UploadSessionStatusResponse(ApiModel):
    """``GET /uploads/sessions/{id}/status`` and ``POST .../cancel``."""

    session_id: str
    status: str
    total_files: int
    completed_files: int = 0
    failed_files: int = 0
    skipped_files: int = 0
    pending_files: int = 0
    progress_percentage: float = 0.0
    created_at: str | None = None
    completed_at: str | None = None
    recent_completions: list[FileResultSummary] = Field(default_factory=list)
    recent_errors: list[FileErrorSummary] = Field(default_factory=list)
    results_url: str | None = None
    websocket_channel: str | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the session will not change any more (the document's final states)."""
        return self.status in {"completed", "failed", "expired", "cancelled"}


class UploadSessionResultItem(ApiModel):
    """One file's final result in a session (``status``: completed, failed or skipped)."""

    image_id: str | None = None
    filename: str
    object_key: str | None = None
    status: str
    error_message: str | None = None
    created_at: str | None = None
    processing_time_ms: float | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


class UploadSessionResultsResponse(ApiModel):
    """One page of ``GET /uploads/sessions/{id}/results``."""

    session_id: str
    results: list[UploadSessionResultItem]
    total_count: int
    has_more: bool
    limit: int | None = None
    offset: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict)


class UploadSessionListItem(ApiModel):
    session_id: str
    status: str
    upload_method: str | None = None
    total_files: int = 0
    completed_files: int = 0
    failed_files: int = 0
    skipped_files: int = 0
    progress_percentage: float = 0.0
    created_at: str | None = None
    completed_at: str | None = None


class UploadSessionListResponse(ApiModel):
    """``GET /uploads/sessions``."""

    sessions: list[UploadSessionListItem]
    total_count: int
    has_more: bool
    limit: int | None = None
    offset: int | None = None


# --- user files -------------------------------------------------------------------------


class UserFile(ApiModel):
    """One file the server holds, as ``GET /user-files`` lists it."""

    id: str
    filename: str | None = None
    title: str | None = None
    size_bytes: int
    created_at: str
    content_type: str | None = None
    media_type: str | None = None
    tags: list[str] = Field(default_factory=list)
    has_full_description: bool = False


class ListUserFilesResponse(ApiModel):
    """One page of ``GET /user-files``."""

    files: list[UserFile]
    total_count: int
    has_more: bool
