"""The client's public surface, pinned: the worker and the planner code against it."""

from __future__ import annotations

import inspect

import ingest.api
from ingest.api import AionClient

ENDPOINT_METHODS = {
    "upload_stream",
    "upload_stream_batch",
    "quota_check",
    "check_duplicates",
    "request_presigned_url",
    "put_presigned",
    "confirm_upload",
    "upload_presigned",
    "batch_prepare",
    "batch_confirm",
    "batch_status",
    "upload_status",
    "session_status",
    "session_results",
    "iter_session_results",
    "cancel_session",
    "list_sessions",
    "list_user_files",
    "list_all_user_files",
}


def test_one_public_method_per_endpoint() -> None:
    public = {
        name
        for name, _ in inspect.getmembers(AionClient, inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == ENDPOINT_METHODS | {"aclose"}


def test_package_exports() -> None:
    assert set(ingest.api.__all__) == {
        "AionClient",
        "FileSpec",
        "RetryPolicy",
        "SizeMismatch",
        "attempts_of",
    }
    params = inspect.signature(AionClient.__init__).parameters
    assert list(params) == ["self", "settings", "transport", "policy", "pacer", "observer"]
