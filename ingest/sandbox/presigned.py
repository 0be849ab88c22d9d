"""The presigned flow: request a URL, PUT the bytes to it, confirm (single or batch).

Upload URLs point at the sandbox itself (``/_sandbox/upload/<token>``) and carry an
expiry and an HMAC signature in the query string, as S3's do: a PUT after the expiry, with
a broken signature or with another Content-Type than the one signed gets 403. ``confirm``
checks that an object arrived with the declared size (and the checksum when one is given).

``idempotency_key``: the same key with the same request returns the first answer (same
object key, same URL); the same key with a different request is a 409 conflict.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.sandbox.errors import ApiError, ValidationFailed, not_found, unsupported
from ingest.sandbox.http import Body, Request
from ingest.sandbox.multipart import (
    HEAD_BYTES,
    SUPPORTED_MIMES,
    SUPPORTED_TEXT,
    DropConnection,
    sniff,
)
from ingest.sandbox.store import (
    TENANT_ID,
    IdempotencyConflict,
    Presign,
    Session,
    SessionResult,
    StoredFile,
    iso,
    now,
)
from ingest.sandbox.uploads import new_file, quota_error

if TYPE_CHECKING:
    from ingest.sandbox.app import Sandbox

BATCH_MAX = 5
INTENTS = ("describe", "verify", "rules", "document_extraction")
LEVELS = ("quick", "standard", "thorough", "critical")
TARGETS = ("default", "custom")


def _conflict(key: str) -> ApiError:
    return ApiError(
        409,
        "IDEMPOTENCY_CONFLICT",
        "idempotency_key was already used with a different request: use a new key for a "
        "different file",
        {"idempotency_key": key},
    )


def _sign(sb: Sandbox, token: str, expires: int) -> str:
    return hmac.new(sb.signing_key, f"{token}:{expires}".encode(), hashlib.sha256).hexdigest()


class FileSpec:
    """One file a client means to PUT: ``PresignedUploadRequest`` or a ``FileInfo``."""

    def __init__(self, body: Body) -> None:
        self.filename: str = body.text("filename")
        self.content_type: str = body.text("content_type")
        self.size_bytes: int = body.integer("size_bytes", gt=0)
        self.idempotency_key: str | None = body.text(
            "idempotency_key", required=False, nullable=True
        )
        self.storage_target: str = body.choice("storage_target", TARGETS, "default")
        self.loc = body.loc

    def fingerprint(self) -> tuple[Any, ...]:
        return (self.filename, self.content_type, self.size_bytes, self.storage_target)

    def check(self, sb: Sandbox) -> None:
        # the declared type here; the bytes (and the name's extension) at confirm
        if self.content_type.lower() not in SUPPORTED_MIMES:
            raise unsupported(
                [*self.loc, "content_type"],
                f"Unsupported file type {self.content_type!r} ({self.filename!r}). "
                f"Supported formats: {SUPPORTED_TEXT}",
            )
        limit = sb.options.presign_max_bytes
        if self.size_bytes > limit:  # as a pydantic `le` would say it
            raise ValidationFailed.one(
                [*self.loc, "size_bytes"],
                f"Input should be less than or equal to {limit} (the presigned upload limit)",
                "less_than_equal",
            )


def _presign(sb: Sandbox, spec: FileSpec, batch_id: str | None, index: int) -> Presign:
    token = uuid.uuid4().hex
    p = Presign(
        token=token,
        object_key=f"uploads/{TENANT_ID}/{uuid.uuid4()}/{spec.filename}",
        filename=spec.filename,
        content_type=spec.content_type,
        size_bytes=spec.size_bytes,
        expires_at=now() + dt.timedelta(seconds=sb.options.presign_ttl_s),
        storage_target=spec.storage_target,
        batch_id=batch_id,
        file_index=index,
        image_id=str(uuid.uuid4()),
    )
    sb.store.presigns[p.object_key] = p
    sb.store.presign_tokens[token] = p.object_key
    return p


def _url(sb: Sandbox, req: Request, p: Presign) -> str:
    host = req.headers.get("host", f"{sb.options.host}:{sb.options.port}")
    scheme = req.scope.get("scheme", "http")
    expires = int(p.expires_at.timestamp())
    query = urllib.parse.urlencode(
        {"X-Sandbox-Expires": expires, "X-Sandbox-Signature": _sign(sb, p.token, expires)}
    )
    return f"{scheme}://{host}/_sandbox/upload/{p.token}?{query}"


def _expires(p: Presign) -> str:
    # the docs' example has no timezone ("2025-01-15T10:40:00"): UTC, said so with a Z
    return p.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def request_url(sb: Sandbox, req: Request) -> dict[str, Any]:
    body = Body(await req.json())
    spec = FileSpec(body)
    purpose = body.text("purpose", required=False, default="image_analysis")
    fingerprint = (*spec.fingerprint(), purpose)
    try:
        seen = sb.store.idempotent("presign", spec.idempotency_key, fingerprint)
    except IdempotencyConflict as exc:
        raise _conflict(exc.key) from None
    if seen is not None:
        return seen
    spec.check(sb)
    if sb.store.remaining(sb.options.monthly_limit) == 0:
        raise quota_error(sb)
    p = _presign(sb, spec, None, 0)
    answer = {
        "upload_url": _url(sb, req, p),
        "upload_method": "PUT",
        "upload_headers": {"Content-Type": p.content_type},
        "upload_fields": None,
        "object_key": p.object_key,
        "expires_at": _expires(p),
        "max_size_bytes": sb.options.presign_max_bytes,
        "storage_target": p.storage_target,
        "bucket_name": "aionvision-sandbox",
    }
    sb.store.remember("presign", spec.idempotency_key, fingerprint, answer)
    return answer


async def put_object(sb: Sandbox, req: Request, token: str) -> dict[str, str]:
    """The PUT to an upload URL; answers S3-like (200 with an ETag)."""
    key = sb.store.presign_tokens.get(token)
    p = sb.store.presigns.get(key) if key else None
    expires = req.q_str("X-Sandbox-Expires") or ""
    signature = req.q_str("X-Sandbox-Signature") or ""
    if p is None or not expires.isdigit():
        raise ApiError(403, "ACCESS_DENIED", "unknown or malformed upload URL")
    if not hmac.compare_digest(signature, _sign(sb, token, int(expires))):
        raise ApiError(403, "SIGNATURE_DOES_NOT_MATCH", "the upload URL's signature is wrong")
    if time.time() > int(expires):
        raise ApiError(403, "REQUEST_EXPIRED", "the upload URL has expired: request a new one")
    session = sb.store.sessions.get(p.batch_id) if p.batch_id else None
    if p.confirm_answer is not None or (session is not None and session.status == "cancelled"):
        raise ApiError(409, "UPLOAD_CLOSED", "this upload was already confirmed or cancelled")
    ctype = req.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != p.content_type.lower():
        raise ApiError(
            403,
            "SIGNATURE_DOES_NOT_MATCH",
            f"Content-Type {ctype!r} differs from the signed {p.content_type!r}: "
            "send the upload_headers",
        )
    if sb.faults.draw_presign_fail():
        raise ApiError(500, "INTERNAL_ERROR", "presigned PUT failed (injected fault)")
    drop_at = sb.drop_point(req)
    md5, sha = hashlib.md5(), hashlib.sha256()
    size, head = 0, bytearray()
    limit = sb.options.presign_max_bytes
    fd, tmp = (-1, "")
    if sb.sink_dir is not None:
        fd, tmp = tempfile.mkstemp(dir=sb.sink_dir, prefix=".put-")
    try:
        with os.fdopen(fd, "wb") if fd >= 0 else _NullFile() as out:
            async for chunk in req.chunks():
                size += len(chunk)
                if drop_at is not None and size >= drop_at:
                    raise DropConnection
                if size > limit:
                    raise ApiError(413, "ENTITY_TOO_LARGE", f"object over {limit} bytes")
                md5.update(chunk)
                sha.update(chunk)
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                out.write(chunk)
    except BaseException:
        if tmp:
            os.unlink(tmp)
        raise
    if p.path is not None:
        p.path.unlink(missing_ok=True)
    p.received_size, p.sha256, p.head = size, sha.hexdigest(), bytes(head)
    p.path = Path(tmp) if tmp else None
    return {"ETag": f'"{md5.hexdigest()}"'}


class _NullFile:
    def __enter__(self) -> _NullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, data: bytes) -> None:
        return None


def finalize(sb: Sandbox, p: Presign, size_bytes: int, checksum: str | None) -> StoredFile:
    """Turn an arrived object into a stored file (idempotent once done)."""
    if p.confirm_answer is not None and p.image_id in sb.store.files:
        return sb.store.files[p.image_id]
    if p.received_size is None:
        expired = now() > p.expires_at
        raise ApiError(
            400,
            "OBJECT_NOT_UPLOADED",
            f"nothing was PUT to the upload URL of {p.object_key!r}"
            + (" and the URL has expired: request a new one" if expired else ""),
            {"object_key": p.object_key},
        )
    if not size_bytes == p.size_bytes == p.received_size:
        raise ApiError(
            400,
            "SIZE_MISMATCH",
            f"declared {p.size_bytes} bytes, confirmed {size_bytes}, received {p.received_size}",
            {"declared": p.size_bytes, "confirmed": size_bytes, "received": p.received_size},
        )
    if checksum and checksum.lower().removeprefix("sha256:") != p.sha256:
        raise ApiError(400, "CHECKSUM_MISMATCH", "checksum differs from the received bytes")
    fmt = sniff(p.head, p.filename)
    if isinstance(fmt, str):
        raise unsupported(["body", "object_key"], f"Unsupported file type: {fmt}")
    if sb.store.remaining(sb.options.monthly_limit) == 0:
        raise quota_error(sb)
    assert p.image_id is not None and p.sha256 is not None
    f = new_file(
        fmt,
        id=p.image_id,
        filename=p.filename,
        title=None,
        size_bytes=p.received_size,
        sha256=p.sha256,
        tags=[],
        object_key=p.object_key,
        upload_method="PRESIGNED",
        storage_target=p.storage_target,
        session_id=p.batch_id,
    )
    sb.store.add_file(f, p.path)
    p.path = None
    p.confirm_answer = {"image_id": f.id}
    return f


async def confirm(sb: Sandbox, req: Request) -> dict[str, Any]:
    body = Body(await req.json())
    object_key: str = body.text("object_key")
    size_bytes: int = body.integer("size_bytes", gt=0)
    checksum: str | None = body.text("checksum", required=False, nullable=True)
    body.text("content_type", required=False, nullable=True)
    p = sb.store.presigns.get(object_key)
    if p is None:
        raise not_found("upload", object_key)
    f = finalize(sb, p, size_bytes, checksum)
    return {
        "upload_id": f.id,
        "object_key": f.object_key,
        "storage_path": f"s3://aionvision-sandbox/{f.object_key}",
        "confirmed": True,
    }


async def batch_prepare(sb: Sandbox, req: Request) -> dict[str, Any]:
    body = Body(await req.json())
    raw = body.items("files", min_items=1, max_items=BATCH_MAX)
    body.choice("intent", INTENTS, None)
    body.choice("verification_level", LEVELS, "standard")
    body.mapping("additional_params")
    specs = [FileSpec(Body(doc, ["body", "files", i])) for i, doc in enumerate(raw)]
    keys = [s.idempotency_key for s in specs]
    batch_key = "|".join(k for k in keys if k) if all(keys) else None
    fingerprint = [s.fingerprint() for s in specs]
    try:
        for s in specs:
            sb.store.idempotent("file", s.idempotency_key, s.fingerprint())
        seen = sb.store.idempotent("batch", batch_key, fingerprint)
    except IdempotencyConflict as exc:
        raise _conflict(exc.key) from None
    if seen is not None:
        return seen
    for s in specs:
        s.check(sb)
    remaining = sb.store.remaining(sb.options.monthly_limit)
    if remaining is not None and remaining < len(specs):
        raise quota_error(sb)
    session = sb.store.new_session("presigned", len(specs))
    urls = []
    for i, s in enumerate(specs):
        p = _presign(sb, s, session.id, i)
        urls.append(
            {
                "file_index": i,
                "filename": s.filename,
                "upload_url": _url(sb, req, p),
                "upload_method": "PUT",
                "upload_fields": None,
                "upload_headers": {"Content-Type": s.content_type},
                "object_key": p.object_key,
                "expires_at": _expires(p),
                "image_id": p.image_id,
            }
        )
        sb.store.remember("file", s.idempotency_key, s.fingerprint(), {})
    total = sum(s.size_bytes for s in specs)
    answer = {
        "batch_id": session.id,
        "upload_plan": {
            "strategy": "parallel",
            "max_concurrent": BATCH_MAX,
            "retry_policy": {"max_retries": 3, "backoff": "exponential"},
            "timeout_per_upload": 300,
        },
        "presigned_urls": urls,
        "total_size_bytes": total,
        "estimated_time_seconds": max(1, total // (10 * 1024 * 1024)),
    }
    sb.store.remember("batch", batch_key, fingerprint, answer)
    return answer


async def batch_confirm(sb: Sandbox, req: Request) -> dict[str, Any]:
    body = Body(await req.json())
    batch_id: str = body.text("batch_id")
    raw = body.items("confirmations", min_items=1)
    body.boolean("auto_process", True)
    confirmations = []
    for i, doc in enumerate(raw):
        c = Body(doc, ["body", "confirmations", i])
        confirmations.append(
            (
                c.text("object_key"),
                _required_bool(c, "success"),
                c.integer("file_size", gt=0),
                c.text("checksum", required=False, nullable=True),
                c.text("error_message", required=False, nullable=True),
            )
        )
    session = sb.store.sessions.get(batch_id)
    if session is None or session.upload_method != "presigned":
        raise not_found("batch", batch_id)
    if session.status == "cancelled":
        raise ApiError(400, "SESSION_CANCELLED", f"batch {batch_id} was cancelled")
    stored: list[dict[str, Any]] = []
    failed: list[str] = []
    for object_key, success, size, checksum, error_message in confirmations:
        p = sb.store.presigns.get(object_key)
        if p is None or p.batch_id != batch_id:
            failed.append(object_key)
            continue
        try:
            if not success:
                raise ApiError(400, "CLIENT_FAILED", error_message or "the client reported failure")
            f = finalize(sb, p, size, checksum)
        except (ApiError, ValidationFailed) as exc:
            failed.append(object_key)
            _record(
                session,
                SessionResult(
                    p.filename,
                    p.image_id or "",
                    object_key,
                    "failed",
                    now(),
                    p.file_index,
                    error=exc.message if isinstance(exc, ApiError) else str(exc),
                ),
            )
            continue
        _record(
            session, SessionResult(f.filename, f.id, f.object_key, "completed", now(), p.file_index)
        )
        stored.append(
            {
                "image_id": f.id,
                "object_key": f.object_key,
                "filename": f.filename,
                "created_at": iso(f.created_at),
                "thumbnail_url": None,
                "variant_status": "completed",
            }
        )
    done = session.pending == 0
    session.status = "completed" if done else "uploading"
    if done:
        session.completed_at = now()
    return {
        "batch_id": batch_id,
        "successful_uploads": len(stored),
        "failed_uploads": len(failed),
        "processing_status": "completed" if not failed else "partial",
        "message": f"{len(stored)} confirmed, {len(failed)} failed",
        "stored_images": stored,
        "failed_files": failed or None,
    }


def _required_bool(c: Body, name: str) -> bool:
    if name not in c.doc:
        raise ValidationFailed.one([*c.loc, name], "Field required", "missing")
    return c.boolean(name, False)


def _record(session: Session, result: SessionResult) -> None:
    """One result per file index: a re-confirm replaces the earlier outcome."""
    session.results = [r for r in session.results if r.index != result.index]
    session.results.append(result)
