"""botocore's and aiohttp's failures translated into the project's error tree: one table.

Every S3 failure is first sorted into a :class:`Kind` by its error code or HTTP status, then
the table below says what it means for each role (:data:`Role`): listing or HEAD of a
source (``list``), reading one source object (``read``), or the state store (``state``).

==================================== ============ =============== ============
S3 says (Kind)                       list / HEAD  read an object  state store
==================================== ============ =============== ============
no credentials at all                FatalError   FatalError      ConfigError
InvalidAccessKeyId, ExpiredToken, …  FatalError   FatalError      FatalError
bad request parameters               ConfigError  ConfigError     ConfigError
NoSuchBucket                         ConfigError  FatalError      ConfigError
PreconditionFailed, 412 (changed)    ConfigError  SourceItemError (Conflict)
InvalidObjectState (archived)        SourceItemE. SourceItemError ConfigError
NoSuchKey, 404 (gone)                SourceItemE. SourceItemError (None)
AccessDenied, 403                    FatalError   SourceItemError FatalError
5xx, SlowDown, 429, timeouts, resets RetryableE.  RetryableError  RetryableError
other 4xx                            ConfigError  SourceItemError ConfigError
==================================== ============ =============== ============

A 403 on one object while the bucket lists fine is usually that object's policy or KMS key,
so it fails the item, not the run; bad credentials fail the run everywhere. The state store
turns "gone" into None (``get``) or nothing (``delete``) and a lost condition into
:class:`~ingest.errors.StateConflict` itself (see :mod:`ingest.state.s3`).
botocore retries transient errors itself first (see :mod:`.client`): what reaches this
table has already been retried.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Literal

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError

from ingest.errors import (
    ConfigError,
    FatalError,
    IngestError,
    RetryableError,
    SourceItemError,
)

Role = Literal["list", "read", "state"]

# network failures that botocore, aiohttp or the OS may raise: all mean "try again later"
NETWORK_ERRORS = (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError)
# everything a client call may raise that :func:`translate` handles
S3_ERRORS = (ClientError, NoCredentialsError, ParamValidationError, *NETWORK_ERRORS)


class Kind(enum.Enum):
    NO_CREDENTIALS = "no credentials"
    BAD_CREDENTIALS = "bad credentials"
    BAD_REQUEST = "bad request"
    NO_BUCKET = "no bucket"
    CHANGED = "changed"
    ARCHIVED = "archived"
    GONE = "gone"
    DENIED = "denied"
    TRANSIENT = "transient"
    REFUSED = "refused"


_BY_CODE = {
    **dict.fromkeys(
        (
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
            "InvalidToken",
            "TokenRefreshRequired",
        ),
        Kind.BAD_CREDENTIALS,
    ),
    "NoSuchBucket": Kind.NO_BUCKET,
    "PreconditionFailed": Kind.CHANGED,
    "ConditionalRequestConflict": Kind.CHANGED,
    "InvalidObjectState": Kind.ARCHIVED,
    **dict.fromkeys(("NoSuchKey", "NotFound", "404", "NoSuchVersion"), Kind.GONE),
    **dict.fromkeys(("AccessDenied", "AllAccessDisabled", "Forbidden", "403"), Kind.DENIED),
    **dict.fromkeys(
        (
            "SlowDown",
            "Throttling",
            "ThrottlingException",
            "RequestTimeout",
            "RequestTimeTooSkewed",
            "InternalError",
            "ServiceUnavailable",
            "503",
            "500",
        ),
        Kind.TRANSIENT,
    ),
}

_NO_CREDENTIALS = (
    "no AWS credentials to reach {where}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "AWS_PROFILE, or a pod identity"
)
_STATE_GRANT = (
    "access denied on {where}; grant s3:GetObject, s3:PutObject, s3:ListBucket and "
    "s3:DeleteObject on that prefix to these credentials"
)
_C, _F, _R, _S = ConfigError, FatalError, RetryableError, SourceItemError
# (kind) -> {role: (error class, message)}; {where} is an s3:// URI or "state store ..."
_TABLE: dict[Kind, dict[Role, tuple[type[IngestError], str]]] = {
    Kind.NO_CREDENTIALS: {"list": (_F, _NO_CREDENTIALS), "read": (_F, _NO_CREDENTIALS),
                          "state": (_C, _NO_CREDENTIALS)},
    Kind.BAD_CREDENTIALS: dict.fromkeys(
        ("list", "read", "state"), (_F, "S3 refused the credentials for {where}; fix them")
    ),
    Kind.BAD_REQUEST: dict.fromkeys(
        ("list", "read", "state"), (_C, "bad S3 request for {where}: {detail}; check the URI")
    ),
    Kind.NO_BUCKET: {
        "list": (_C, "bucket of {where} does not exist; check the source URI"),
        "read": (_F, "bucket of {where} does not exist; check the source URI"),
        "state": (_C, "{where}: bucket {bucket} does not exist; create it or fix INGEST_STATE"),
    },
    Kind.CHANGED: {
        "list": (_C, "S3 refused {where}: {detail}; check the source URI"),
        "read": (_S, "{where} changed since planning (ETag differs)"),
        "state": (_C, "{where} changed while being written ({detail})"),
    },
    Kind.ARCHIVED: {
        "list": (_S, "{where} is archived (Glacier); restore it first"),
        "read": (_S, "{where} is archived (Glacier); restore it first"),
        "state": (_C, "{where} is archived (Glacier); use a bucket without lifecycle rules"),
    },
    Kind.GONE: {
        "list": (_S, "{where} is gone (deleted since planning?)"),
        "read": (_S, "{where} is gone (deleted since planning?)"),
        "state": (_C, "{where} is gone; S3 refused the request ({detail})"),
    },
    Kind.DENIED: {
        "list": (_F, "access denied on {where}; grant s3:ListBucket and s3:GetObject"),
        "read": (_S, "access denied reading {where}"),
        "state": (_F, _STATE_GRANT),
    },
    Kind.TRANSIENT: dict.fromkeys(
        ("list", "read", "state"), (_R, "S3 trouble at {where}: {detail}")
    ),
    Kind.REFUSED: {
        "list": (_C, "S3 refused {where}: {detail}; check the source URI"),
        "read": (_S, "S3 refused {where}: {detail}"),
        "state": (_C, "S3 refused {where} ({detail}); check INGEST_STATE and its bucket"),
    },
}  # fmt: skip


def error_code(exc: BaseException) -> str:
    """S3's error code of a ClientError (``NoSuchKey``, ``PreconditionFailed``, ...), or ""."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def kind_of(exc: BaseException) -> Kind:
    """What kind of failure ``exc`` is (the rows of the module's table)."""
    if isinstance(exc, NoCredentialsError):
        return Kind.NO_CREDENTIALS
    if isinstance(exc, ParamValidationError):
        return Kind.BAD_REQUEST
    if not isinstance(exc, ClientError):
        return Kind.TRANSIENT
    status = _status(exc) or 0
    kind = _BY_CODE.get(error_code(exc))
    if kind is not None:
        return kind
    if status == 412:
        return Kind.CHANGED
    if status == 404:
        return Kind.GONE
    if status == 403:
        return Kind.DENIED
    if status >= 500 or status == 429:
        return Kind.TRANSIENT
    return Kind.REFUSED


def translate(exc: BaseException, where: str, role: Role, bucket: str = "") -> IngestError:
    """The project's error for a botocore/aiohttp failure at ``where`` in ``role``
    (``bucket`` names the bucket in the state store's messages)."""
    if not isinstance(exc, ClientError | NoCredentialsError | ParamValidationError):
        return RetryableError(f"S3 unreachable or connection broke at {where}: {exc!r}")
    kind = kind_of(exc)
    cls, template = _TABLE[kind][role]
    code = error_code(exc)
    status = _status(exc)
    detail = str(exc) if kind is Kind.BAD_REQUEST else (code or str(status or "error"))
    return cls(
        template.format(where=where, detail=detail, bucket=bucket), status=status, code=code or None
    )


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, ClientError):
        value = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(value) if value else None
    return None
