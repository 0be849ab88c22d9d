"""S3 error codes by what to do about them, shared by the S3 source and the S3 state store.

Plain data, no client import: each folder that talks to S3 (sources/, state/) translates
botocore's errors itself, at its own edge, with these sets of codes.
"""

from __future__ import annotations

CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
    }
)
DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "Forbidden", "403"})
GONE_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchVersion"})
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
    }
)
CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
