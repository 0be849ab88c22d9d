"""Read-mostly endpoints: quota, duplicates, statuses, sessions, and the file listing.

``GET /user-files`` lists what the sandbox holds in the public spec's ``UserFile`` shape,
plus ``title`` and ``hash`` (the SHA-256, as ``UserFileDetails`` names it) so tests can
check what arrived; extra keys are allowed by the spec's schema.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from ingest.sandbox.errors import ApiError, ValidationFailed, not_found
from ingest.sandbox.http import Body, Request
from ingest.sandbox.store import TENANT_ID, Session, StoredFile, iso, now

if TYPE_CHECKING:
    from ingest.sandbox.app import Sandbox

RECENT = 10
TERMINAL = ("completed", "failed", "expired", "cancelled")
SORT_FIELDS = ("created_at", "content_created_at", "title", "size_bytes")


async def quota_check(sb: Sandbox, req: Request) -> dict[str, Any]:
    requested = req.q_int("file_count")
    limit = sb.options.monthly_limit
    available = sb.store.remaining(limit)
    can = available is None or requested <= available
    return {
        "can_proceed": can,
        "requested": requested,
        # unlimited plans: no limit and nothing to count down, said with nulls
        "available": available,
        "monthly_limit": limit,
        "current_usage": sb.store.usage,
        "message": None
        if can
        else f"Monthly upload quota exceeded: {available} of {limit} uploads left, "
        f"{requested} requested. Upgrade the plan or wait for next month's reset.",
    }


async def check_duplicates(sb: Sandbox, req: Request) -> dict[str, Any]:
    body = Body(await req.json())
    hashes = body.items("hashes", min_items=1, max_items=500)
    for i, h in enumerate(hashes):
        if not isinstance(h, str):
            raise ValidationFailed.one(
                ["body", "hashes", i], "Input should be a valid string", "string_type"
            )
    duplicates = [h for h in hashes if sb.store.duplicate_of(h) is not None]
    unique = [h for h in hashes if sb.store.duplicate_of(h) is None]
    return {"duplicates": duplicates, "unique": unique}


def _file(sb: Sandbox, image_id: str) -> StoredFile:
    f = sb.store.files.get(image_id)
    if f is None:
        raise not_found("file", image_id)
    return f


async def upload_status(sb: Sandbox, req: Request) -> dict[str, Any]:
    f = _file(sb, req.params["image_id"])
    return {
        "image_id": f.id,
        "tenant_id": TENANT_ID,
        "unified_status": "completed",
        "component_statuses": {
            "upload_intent_status": "completed",
            "variant_status": "completed" if f.media_type == "image" else None,
            "description_status": "completed" if f.auto_describe else "skipped",
            "task_intent_status": None,
        },
        "batch_id": f.session_id,
        "created_at": iso(f.created_at),
        "completed_at": iso(f.created_at),
        "last_updated_at": iso(f.created_at),
        "is_terminal": True,
        "is_stuck": False,
        "retry_count": 0,
        "error_message": None,
        "task_intent_ids": [],
    }


def _session(sb: Sandbox, req: Request) -> Session:
    raw = req.params["session_id"]
    try:
        uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed.one(
            ["path", "session_id"], "Input should be a valid UUID", "uuid_parsing"
        ) from None
    s = sb.store.sessions.get(raw)
    if s is None:
        raise not_found("session", raw)
    return s


def _status_doc(s: Session) -> dict[str, Any]:
    done = [r for r in s.results if r.status != "failed"]
    errors = [r for r in s.results if r.status == "failed"]
    return {
        "session_id": s.id,
        "status": s.status,
        "total_files": s.total_files,
        "completed_files": s.count("completed"),
        "failed_files": s.count("failed"),
        "skipped_files": s.count("skipped"),
        "pending_files": s.pending,
        "progress_percentage": s.progress,
        "created_at": iso(s.created_at),
        "started_at": iso(s.created_at),
        "completed_at": iso(s.completed_at),
        "estimated_completion_time": None,
        "recent_completions": [
            {
                "filename": r.filename,
                "image_id": r.image_id,
                "status": r.status,
                "processing_time_ms": r.processing_time_ms,
                "error_message": None,
            }
            for r in done[-RECENT:]
        ],
        "recent_errors": [
            {"filename": r.filename, "index": r.index, "error": r.error or "", "retryable": False}
            for r in errors[-RECENT:]
        ],
        "results_url": f"/api/v2/uploads/sessions/{s.id}/results",
        "websocket_channel": f"batch.{s.id}",
    }


async def session_status(sb: Sandbox, req: Request) -> dict[str, Any]:
    return _status_doc(_session(sb, req))


async def session_results(sb: Sandbox, req: Request) -> dict[str, Any]:
    s = _session(sb, req)
    include_failed = req.q_bool("include_failed", True)
    offset = req.q_int("offset", 0, ge=0)
    limit = req.q_int("limit", 100, ge=1, le=500)
    rows = sorted(s.results, key=lambda r: r.index)
    if not include_failed:
        rows = [r for r in rows if r.status != "failed"]
    page = rows[offset : offset + limit]
    return {
        "session_id": s.id,
        "results": [
            {
                "image_id": r.image_id,
                "filename": r.filename,
                "object_key": r.object_key,
                "status": r.status,
                "created_at": iso(r.created_at),
                "processing_time_ms": r.processing_time_ms,
                "error_message": r.error,
                "tags": r.tags,
                "thumbnail_url": None,
                "visible_text": None,
            }
            for r in page
        ],
        "total_count": len(rows),
        "offset": offset,
        "limit": limit,
        "has_more": offset + len(page) < len(rows),
        "summary": {
            "completed": s.count("completed"),
            "failed": s.count("failed"),
            "skipped": s.count("skipped"),
            "pending": s.pending,
        },
    }


async def cancel_session(sb: Sandbox, req: Request) -> dict[str, Any]:
    s = _session(sb, req)
    if s.status in TERMINAL:
        raise ApiError(
            400,
            "SESSION_NOT_CANCELLABLE",
            f"session {s.id} is {s.status}: only pending or running sessions can be cancelled",
            {"status": s.status},
        )
    s.status = "cancelled"
    s.completed_at = now()
    return _status_doc(s)


async def list_sessions(sb: Sandbox, req: Request) -> dict[str, Any]:
    status = req.q_str("status")
    method = req.q_str("upload_method")
    limit = req.q_int("limit", 20, ge=1, le=100)
    offset = req.q_int("offset", 0, ge=0)
    rows = [
        s
        for s in reversed(list(sb.store.sessions.values()))
        if (status is None or s.status == status) and (method is None or s.upload_method == method)
    ]
    page = rows[offset : offset + limit]
    return {
        "sessions": [
            {
                "session_id": s.id,
                "status": s.status,
                "upload_method": s.upload_method,
                "total_files": s.total_files,
                "completed_files": s.count("completed"),
                "failed_files": s.count("failed"),
                "skipped_files": s.count("skipped"),
                "progress_percentage": s.progress,
                "created_at": iso(s.created_at),
                "completed_at": iso(s.completed_at),
            }
            for s in page
        ],
        "total_count": len(rows),
        "offset": offset,
        "limit": limit,
        "has_more": offset + len(page) < len(rows),
    }


def _user_file(f: StoredFile) -> dict[str, Any]:
    return {
        "id": f.id,
        "filename": f.filename,
        "title": f.title,
        "size_bytes": f.size_bytes,
        "hash": f.sha256,
        "created_at": iso(f.created_at),
        "content_created_at": None,
        "content_type": f.content_type,
        "format": f.format,
        "media_type": f.media_type,
        "document_type": f.document_type,
        "tags": f.tags,
        "has_full_description": False,
        "description_status": "pending" if f.auto_describe else "skipped",
        "variant_status": "completed" if f.media_type == "image" else None,
        "upload_description": None,
        "thumbnail_url": None,
    }


async def list_user_files(sb: Sandbox, req: Request) -> dict[str, Any]:
    limit = req.q_int("limit", 20, ge=1, le=100)
    offset = req.q_int("offset", 0, ge=0)
    sort_by = req.q_str("sort_by") or "content_created_at"
    if sort_by not in SORT_FIELDS:
        raise ApiError(400, "INVALID_SORT", f"sort_by must be one of {', '.join(SORT_FIELDS)}")
    descending = (req.q_str("sort_order") or "desc").lower() != "asc"
    ids = set(req.query.get("ids", []))
    tags = set(req.query.get("tags", []))
    media = set(req.query.get("media_types", []))
    search = (req.q_str("search") or "").lower()
    date_from = _q_time(req, "date_from")
    date_to = _q_time(req, "date_to")
    rows = [
        f
        for f in sb.store.files.values()
        if (date_from is None or f.created_at >= date_from)
        and (date_to is None or f.created_at <= date_to)
        and (not ids or f.id in ids)
        and (not tags or tags & set(f.tags))
        and (not media or f.media_type in media)
        and (not search or search in (f.title or "").lower() or search in f.filename.lower())
    ]

    def key(f: StoredFile) -> Any:
        if sort_by == "title":
            return (f.title or f.filename, f.seq)
        if sort_by == "size_bytes":
            return (f.size_bytes, f.seq)
        return f.seq  # creation order; stable under equal timestamps

    rows.sort(key=key, reverse=descending)
    page = rows[offset : offset + limit]
    return {
        "files": [_user_file(f) for f in page],
        "total_count": len(rows),
        "has_more": offset + len(page) < len(rows),
    }


def _q_time(req: Request, name: str) -> dt.datetime | None:
    """A date-time query parameter (ISO 8601; no zone means UTC), or None."""
    raw = req.q_str(name)
    if not raw:
        return None
    try:
        t = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed.one(
            ["query", name], "Input should be a valid datetime", "datetime_parsing"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


async def get_user_file(sb: Sandbox, req: Request) -> dict[str, Any]:
    f = _file(sb, req.params["image_id"])
    doc = _user_file(f)
    doc.update(
        object_key=f.object_key,
        original_filename=f.filename,
        dimensions={},
        upload_method=f.upload_method,
        full_descriptions=[],
        processing_history=[],
        updated_at=iso(f.created_at),
    )
    return doc


async def batch_status(sb: Sandbox, req: Request) -> dict[str, Any]:
    batch_id = req.params["batch_id"]
    s = sb.store.sessions.get(batch_id)
    if s is None:
        raise not_found("batch", batch_id)
    failed = [r for r in s.results if r.status == "failed"]
    return {
        "batch_id": s.id,
        "tenant_id": TENANT_ID,
        "overall_status": s.status,
        "completion_percentage": s.progress,
        "counts": {
            "total": s.total_files,
            "completed": s.count("completed") + s.count("skipped"),
            "failed": len(failed),
            "uploading": s.pending if s.status not in TERMINAL else 0,
            "queued": 0,
            "confirming": 0,
            "processing": 0,
            "partially_completed": 0,
            "stuck": 0,
        },
        "description_counts": {
            "pending": 0,
            "processing": 0,
            "completed": s.count("completed"),
            "failed": 0,
            "skipped": s.count("skipped"),
        },
        "error_summary": {"count": len(failed), "messages": [r.error or "" for r in failed]},
        "created_at": iso(s.created_at),
        "last_activity_at": iso(s.completed_at or s.created_at),
    }
