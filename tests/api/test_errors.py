"""Error answers: the three documented shapes, Retry-After, and what each status means."""

from __future__ import annotations

import email.utils
import json

import pytest

from ingest.api.errors import ApiErrorInfo, classify, parse_error_body, parse_retry_after
from ingest.errors import (
    ConfigError,
    FatalError,
    IngestError,
    ItemRejected,
    QuotaExhausted,
    RateLimited,
    RetryableError,
)


def test_nested_envelope() -> None:
    body = {
        "error": {"code": "FILE_TOO_LARGE", "message": "File exceeds 100MB", "details": {"max": 1}},
        "request_id": "req-1",
    }
    info = parse_error_body(json.dumps(body).encode())
    assert info == ApiErrorInfo("FILE_TOO_LARGE", "File exceeds 100MB", {"max": 1}, "req-1")


def test_fastapi_validation_list() -> None:
    body = {"detail": [{"loc": ["body", "title"], "msg": "too long", "type": "string_too_long"}]}
    info = parse_error_body(json.dumps(body).encode())
    assert info.code == "VALIDATION_ERROR"
    assert info.message == "title: too long"


def test_fastapi_plain_detail() -> None:
    info = parse_error_body(b'{"detail": "Session not found"}')
    assert (info.code, info.message) == (None, "Session not found")


def test_flat_user_files_shape() -> None:
    body = {"error": "UNSUPPORTED_TYPE", "message": "HEIC is not supported", "details": None}
    info = parse_error_body(json.dumps(body).encode())
    assert (info.code, info.message) == ("UNSUPPORTED_TYPE", "HEIC is not supported")


def test_flat_error_response_shape() -> None:
    body = {"error_code": "QUOTA_EXCEEDED", "message": "Monthly quota", "request_id": "r"}
    info = parse_error_body(json.dumps(body).encode())
    assert (info.code, info.request_id) == ("QUOTA_EXCEEDED", "r")


@pytest.mark.parametrize(
    ("body", "ctype", "message"),
    [
        (b"upstream timed out", "text/plain", "upstream timed out"),
        (b"<html><body>502 Bad Gateway</body></html>", "text/html", None),
        (b"", None, None),
        (b"x" * 5000, "text/plain", "x" * 299 + "…"),
    ],
)
def test_other_bodies_become_short_text(
    body: bytes, ctype: str | None, message: str | None
) -> None:
    assert parse_error_body(body, ctype).message == message


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (email.utils.formatdate(NOW + 42, usegmt=True), 42.0),
        (email.utils.formatdate(NOW - 42, usegmt=True), 0.0),
        ("soon", None),
        ("nan", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def _classify(status: int, code: str | None = None, message: str | None = None) -> IngestError:
    return classify(
        status,
        ApiErrorInfo(code=code, message=message),
        endpoint="/user-files/upload/stream",
        request_id="rid",
        retry_after=3.0,
    )


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, "RATE_LIMIT_EXCEEDED", RateLimited),
        (429, "MEMORY_LIMIT_EXCEEDED", RateLimited),
        (500, None, RetryableError),
        (502, None, RetryableError),
        (503, None, RetryableError),
        (504, None, RetryableError),
        (401, "UNAUTHORIZED", FatalError),
        (403, "FORBIDDEN", FatalError),
        (402, "PAYMENT_REQUIRED", FatalError),
        (429, "QUOTA_EXCEEDED", QuotaExhausted),  # a FatalError the worker handles
        (403, "UPLOAD_QUOTA_EXHAUSTED", QuotaExhausted),
        (400, "INVALID_FILE", ItemRejected),
        (413, "FILE_TOO_LARGE", ItemRejected),
        (415, "UNSUPPORTED_MEDIA_TYPE", ItemRejected),
        (422, "VALIDATION_ERROR", ItemRejected),
        (404, None, ConfigError),
    ],
)
def test_classification(status: int, code: str | None, kind: type[IngestError]) -> None:
    error = _classify(status, code, "said the server")
    assert type(error) is kind
    assert (error.status, error.code, error.request_id) == (status, code, "rid")
    text = str(error)
    assert "/user-files/upload/stream" in text
    assert "said the server" in text
    assert "\n" not in text


def test_rate_limit_keeps_retry_after_and_401_names_the_fix() -> None:
    limited = _classify(429)
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 3.0
    assert "AIONVISION_API_KEY" in str(_classify(401))


def test_the_servers_request_id_wins() -> None:
    info = ApiErrorInfo(message="boom", request_id="server-rid")
    error = classify(500, info, endpoint="/x", request_id="ours")
    assert error.request_id == "server-rid"
