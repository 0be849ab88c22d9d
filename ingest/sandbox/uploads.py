"""The two recommended endpoints: ``upload/stream`` and ``upload/stream-batch``.

Checks follow FastAPI's order: form fields first (422), then the endpoint's own limits
(413 too big or too many files, 422 unsupported, 402 quota). A batch is all or nothing
at the request level (too many files), file by file otherwise: a bad file becomes a
``rejections`` entry and the others go on.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from ingest.sandbox.errors import ApiError, ValidationFailed, missing, unsupported
from ingest.sandbox.http import Request, check_choice, parse_bool
from ingest.sandbox.multipart import SUPPORTED_TEXT, FilePart, Form, Format, parse_form, sniff
from ingest.sandbox.store import TENANT_ID, SessionResult, StoredFile, now

if TYPE_CHECKING:
    from ingest.sandbox.app import Sandbox

MAX_TITLE = 255
IMMEDIATE_MAX = 5
INTENTS = ("describe", "verify", "rules")
TARGETS = ("default", "custom")


class UploadFields:
    """The non-file form fields of both stream endpoints, validated."""

    def __init__(self, form: Form, *, batch: bool) -> None:
        fields = form.fields
        self.title = self._one(fields, "title")
        if self.title is not None and len(self.title) > MAX_TITLE:
            raise ValidationFailed.one(
                ["body", "title"],
                f"String should have at most {MAX_TITLE} characters",
                "string_too_long",
            )
        tags = self._one(fields, "tags") or ""
        self.tags = [t.strip() for t in tags.split(",") if t.strip()]
        self.auto_describe = self._bool(fields, "auto_describe", True)
        self.skip_duplicates = self._bool(fields, "skip_duplicates", False)
        self.storage_target = self._choice(fields, "storage_target", TARGETS, "default")
        if batch:
            self.intent = self._choice(fields, "intent", INTENTS, "describe")

    @staticmethod
    def _one(fields: dict[str, list[str]], name: str) -> str | None:
        values = fields.get(name)
        return values[-1] if values else None

    def _bool(self, fields: dict[str, list[str]], name: str, default: bool) -> bool:
        raw = self._one(fields, name)
        return default if raw is None else parse_bool(raw, ["body", name])

    def _choice(
        self, fields: dict[str, list[str]], name: str, allowed: tuple[str, ...], default: str
    ) -> str:
        raw = self._one(fields, name)
        return default if raw is None else check_choice(raw, allowed, ["body", name])


def check_file(sb: Sandbox, part: FilePart) -> Format:
    """The part's format, or the error a single stream upload answers with."""
    if part.too_large:
        limit = sb.options.max_stream_bytes
        raise ApiError(
            413,
            "FILE_TOO_LARGE",
            f"{part.filename!r} is over the {limit // (1024 * 1024)} MB streaming limit: "
            "use the presigned URL workflow",
            {"max_size_bytes": limit, "filename": part.filename},
        )
    if part.size == 0:
        raise ApiError(
            400, "EMPTY_FILE", f"{part.filename!r} is empty", {"filename": part.filename}
        )
    fmt = sniff(part.head, part.filename)
    if isinstance(fmt, str):
        raise unsupported(
            ["body", part.field],
            f"Unsupported file type: {fmt}. Supported formats: {SUPPORTED_TEXT}",
        )
    return fmt


def commit(
    sb: Sandbox,
    part: FilePart,
    fmt: Format,
    fields: UploadFields,
    *,
    title: str | None,
    session_id: str | None = None,
) -> StoredFile:
    f = new_file(
        fmt,
        id=str(uuid.uuid4()),
        filename=part.filename,
        title=title,
        size_bytes=part.size,
        sha256=part.sha256,
        tags=list(fields.tags),
        object_key=f"uploads/{TENANT_ID}/{uuid.uuid4()}/{part.filename}",
        upload_method="STREAMING",
        auto_describe=fields.auto_describe,
        storage_target=fields.storage_target,
        session_id=session_id,
    )
    part.close()
    sb.store.add_file(f, part.path)
    part.path = None
    return f


def new_file(fmt: Format, **fields: Any) -> StoredFile:
    """A file record whose format fields come from the sniffed ``fmt``."""
    return StoredFile(
        format=fmt.name,
        content_type=fmt.mime,
        media_type=fmt.media_type,
        document_type=fmt.document_type,
        created_at=now(),
        **fields,
    )


def quota_error(sb: Sandbox) -> ApiError:
    limit = sb.options.monthly_limit
    return ApiError(
        402,
        "QUOTA_EXCEEDED",
        f"Monthly upload quota of {limit} files is used up: upgrade the plan or wait for "
        "next month",
        {"monthly_limit": limit, "current_usage": sb.store.usage},
    )


def _file_answer(f: StoredFile, *, skipped: bool, elapsed_ms: float) -> dict[str, Any]:
    return {
        "image_id": f.id,
        "object_key": f.object_key,
        "status": "skipped" if skipped else "completed",
        "processing_time_ms": elapsed_ms,
        "skipped": skipped,
        "skipped_existing_image_id": f.id if skipped else None,
        "storage_target": f.storage_target,
        "media_type": f.media_type,
        "document_type": f.document_type,
        "text_extraction_status": "completed" if f.media_type == "document" else None,
    }


async def _parse(sb: Sandbox, req: Request) -> Form:
    return await parse_form(
        req,
        max_file_bytes=sb.options.max_stream_bytes,
        sink_dir=sb.sink_dir,
        drop_after=sb.drop_point(req),
    )


async def stream(sb: Sandbox, req: Request) -> dict[str, Any]:
    started = time.perf_counter()
    form = await _parse(sb, req)
    try:
        files = [p for p in form.files if p.field == "file"]
        if not files:
            raise missing(["body", "file"])
        fields = UploadFields(form, batch=False)
        part = files[0]
        fmt = check_file(sb, part)
        existing = sb.store.duplicate_of(part.sha256) if fields.skip_duplicates else None
        if existing is None:
            if sb.store.remaining(sb.options.monthly_limit) == 0:
                raise quota_error(sb)
            stored = commit(sb, part, fmt, fields, title=fields.title)
        else:
            stored = existing
        elapsed = round((time.perf_counter() - started) * 1000.0, 3)
        answer = _file_answer(stored, skipped=existing is not None, elapsed_ms=elapsed)
        answer.update(
            upload_method="STREAMING",
            s3_upload_completed=True,
            variants_queued=existing is None and fmt.media_type == "image",
            description_queued=existing is None and fields.auto_describe,
        )
        return answer
    finally:
        form.discard()


async def stream_batch(sb: Sandbox, req: Request) -> dict[str, Any]:
    started = time.perf_counter()
    form = await _parse(sb, req)
    try:
        parts = [p for p in form.files if p.field == "files"]
        if not parts:
            raise missing(["body", "files"])
        fields = UploadFields(form, batch=True)
        limit = sb.options.batch_limit
        if len(parts) > limit:
            raise ApiError(
                413,
                "TOO_MANY_FILES",
                f"{len(parts)} files in one stream-batch; the {sb.options.tier} tier allows "
                f"{limit}: split the batch",
                {"max_files": limit, "received_files": len(parts), "tier": sb.options.tier},
            )
        if sb.store.remaining(sb.options.monthly_limit) == 0:
            raise quota_error(sb)
        session = sb.store.new_session("streaming", len(parts))
        session.status = "processing"
        results: list[dict[str, Any]] = []
        rejections: list[dict[str, Any]] = []
        for index, part in enumerate(parts):
            elapsed = round((time.perf_counter() - started) * 1000.0, 3)
            try:
                fmt = check_file(sb, part)
                existing = sb.store.duplicate_of(part.sha256) if fields.skip_duplicates else None
                if existing is None and sb.store.remaining(sb.options.monthly_limit) == 0:
                    raise quota_error(sb)
            except (ApiError, ValidationFailed) as exc:
                reason = exc.message if isinstance(exc, ApiError) else str(exc)
                rejections.append(
                    {
                        "filename": part.filename,
                        "index": index,
                        "reason": reason,
                        "retryable": False,
                    }
                )
                session.results.append(
                    SessionResult(
                        part.filename,
                        str(uuid.uuid4()),
                        "",
                        "failed",
                        now(),
                        index,
                        error=reason,
                    )
                )
                continue
            stored = existing or commit(sb, part, fmt, fields, title=None, session_id=session.id)
            answer = _file_answer(stored, skipped=existing is not None, elapsed_ms=elapsed)
            answer.update(filename=part.filename, error=None)
            results.append(answer)
            session.results.append(
                SessionResult(
                    part.filename,
                    stored.id,
                    stored.object_key,
                    answer["status"],
                    now(),
                    index,
                    processing_time_ms=elapsed,
                    tags=list(fields.tags),
                )
            )
        small = len(parts) <= IMMEDIATE_MAX
        # Small batches are answered when done; larger ones say "processing" and are done
        # by the time anyone asks (the sandbox has no background work).
        session.status = "completed" if results or not rejections else "failed"
        session.completed_at = now()
        return {
            "session_id": session.id,
            "total_files": len(parts),
            "accepted_files": len(parts) - len(rejections),
            "rejected_files": len(rejections),
            "status": session.status if small else "processing",
            "immediate_results": results if small else None,
            "status_url": f"/api/v2/uploads/sessions/{session.id}/status",
            "websocket_channel": f"batch.{session.id}",
            "rejections": rejections or None,
        }
    finally:
        form.discard()
