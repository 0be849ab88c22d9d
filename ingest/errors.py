"""The error tree, shared by every layer.

Errors are classified once, at the edge where they arise (the API client, the source, the
state store), by what the caller should do about them::

    IngestError
     ├── ConfigError        bad usage or configuration          → exit 2, nothing retried
     ├── FatalError         fatal for the whole run             → exit 3 (401/403, quota)
     │    └── StateDamaged  a state-store file is truncated or garbled: retrying cannot help
     ├── RetryableError     transient: retry with backoff       → exit 1 once retries run out
     │    └── RateLimited   429, with the server's Retry-After when it sent one
     ├── ItemRejected       this item cannot be uploaded        → outcome `failed`, shard goes on
     ├── SourceItemError    the source object is gone or changed → outcome `failed`
     └── StateConflict      a conditional write lost a race     → a newer writer owns the shard

Foreign exceptions (httpx, botocore, OSError) never cross a layer boundary: each edge
translates them with ``raise ... from``. Messages never contain secrets: a registered
secret (the API key) that a server echoed into its error text is replaced by ``***`` when
the error is made, so no report row, results part or console line can carry it.
"""

from __future__ import annotations

import enum

from ingest.logs import redact


class ExitCode(enum.IntEnum):
    """Process exit codes: the contract with the Indexed Job's podFailurePolicy."""

    OK = 0
    TRANSIENT = 1
    USAGE = 2
    FATAL = 3
    RUN_FAILED = 4  # the run ended and some shards failed: final, the coordinator's Job
    # must not retry it (a rerun would adopt the same ended worker Job); see the README
    SIGTERM = 143


class IngestError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code: ExitCode = ExitCode.TRANSIENT

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"(HTTP {self.status}{', ' + self.code if self.code else ''})")
        elif self.code:
            parts.append(f"({self.code})")
        if self.request_id:
            parts.append(f"[request {self.request_id}]")
        return " ".join(parts)


class ConfigError(IngestError):
    """Bad usage or configuration: the message names the setting and the fix."""

    exit_code = ExitCode.USAGE


class FatalError(IngestError):
    """Nothing in this run can succeed (bad key, quota exhausted): stop everything."""

    exit_code = ExitCode.FATAL


class QuotaExhausted(FatalError):
    """The month's upload quota is used up (402/403/429 naming the quota). Fatal for a
    run that sends nothing more; the worker records the files it could not send as
    ``quota_exhausted`` instead (ingest/worker/quota.py)."""


class StateDamaged(FatalError):
    """A file in the state store cannot be read (truncated, garbled): the message names it
    and the fix. Fatal: a retry reads the same bytes."""


class RetryableError(IngestError):
    """Transient trouble: the same request may succeed later."""

    exit_code = ExitCode.TRANSIENT

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """HTTP 429. ``retry_after`` is the server's wish in seconds, or None when it sent none."""


class ItemRejected(IngestError):
    """The API refused this one file (400/413/415/422); other items go on."""

    exit_code = ExitCode.OK


class SourceItemError(IngestError):
    """The source object vanished or changed since planning; other items go on."""

    exit_code = ExitCode.OK


class StateConflict(IngestError):
    """A conditional write lost: someone else wrote first (a zombie, or a second planner)."""

    exit_code = ExitCode.TRANSIENT
