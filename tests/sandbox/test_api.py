"""Auth, error shapes, request ids, user-files listing and details."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.sandbox.files import png

ENDPOINTS = [
    ("POST", "/user-files/upload/stream"),
    ("POST", "/user-files/upload/stream-batch"),
    ("GET", "/uploads/quota-check?file_count=1"),
    ("POST", "/uploads/check-duplicates"),
    ("POST", "/uploads/request-presigned-url"),
    ("POST", "/uploads/confirm"),
    ("POST", "/uploads/batch-prepare"),
    ("POST", "/uploads/batch-confirm"),
    ("GET", f"/uploads/batch/{uuid.uuid4()}/status"),
    ("GET", f"/uploads/status/{uuid.uuid4()}"),
    ("GET", f"/uploads/sessions/{uuid.uuid4()}/status"),
    ("GET", f"/uploads/sessions/{uuid.uuid4()}/results"),
    ("POST", f"/uploads/sessions/{uuid.uuid4()}/cancel"),
    ("GET", "/uploads/sessions"),
    ("GET", "/user-files"),
    ("GET", f"/user-files/{uuid.uuid4()}"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic aion_sandbox_key"])
def test_every_endpoint_needs_the_bearer_key(sandbox, method, path, auth):
    headers = {"Authorization": auth} if auth else {}
    with sandbox.expect_violations():
        r = httpx.request(method, f"{sandbox.base_url}{path}", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    doc = r.json()
    if path.startswith("/user-files") and method == "GET":
        assert doc["error"] == "UNAUTHORIZED" and "message" in doc
    else:
        assert doc["error"]["code"] == "UNAUTHORIZED"
        assert doc["request_id"] == r.headers["x-request-id"]


def test_unknown_route_and_method(sandbox):
    with sandbox.client() as c, sandbox.expect_violations():
        assert c.get("/nope").status_code == 404
        assert c.get("/uploads/confirm").status_code == 405


def _upload(c: httpx.Client, n: int) -> list[str]:
    return [
        c.post(
            "/user-files/upload/stream",
            files={"file": (f"f{i:02}.png", png(seed=i))},
            data={"title": f"t{i:02}"},
        ).json()["image_id"]
        for i in range(n)
    ]


def test_user_files_pagination(sandbox):
    with sandbox.client() as c:
        ids = _upload(c, 25)
        pages, offset = [], 0
        while True:
            doc = c.get("/user-files", params={"limit": 10, "offset": offset}).json()
            pages.append(doc)
            offset += len(doc["files"])
            if not doc["has_more"]:
                break
        asc = c.get("/user-files", params={"sort_order": "asc", "limit": 3}).json()
        with sandbox.expect_violations():
            too_many = c.get("/user-files", params={"limit": 101})
    assert [len(p["files"]) for p in pages] == [10, 10, 5]
    assert all(p["total_count"] == 25 for p in pages)
    listed = [f["id"] for p in pages for f in p["files"]]
    assert listed == ids[::-1]  # newest first by default
    assert [f["id"] for f in asc["files"]] == ids[:3]
    first = pages[-1]["files"][-1]
    assert first["filename"] == "f00.png" and first["title"] == "t00"
    assert {"id", "filename", "title", "size_bytes", "created_at"} <= set(first)
    assert too_many.status_code == 422


def test_user_file_details_and_flat_404(sandbox):
    with sandbox.client() as c:
        [image_id] = _upload(c, 1)
        doc = c.get(f"/user-files/{image_id}").json()
        missing = c.get(f"/user-files/{uuid.uuid4()}")
        status_missing = c.get(f"/uploads/status/{uuid.uuid4()}")
    assert doc["id"] == image_id and doc["format"] == "png"
    assert doc["upload_method"] == "STREAMING" and len(doc["hash"]) == 64
    assert missing.status_code == 404
    assert missing.json()["error"] == "NOT_FOUND"  # the flat UserFilesError
    assert status_missing.json()["error"]["code"] == "NOT_FOUND"  # nested under /uploads


def test_request_id_is_made_up_when_absent(sandbox):
    with sandbox.client() as c:
        r = c.get("/uploads/quota-check", params={"file_count": 1})
    assert len(r.headers["x-request-id"]) == 32


def test_contract_middleware_catches_what_the_spec_forbids(sandbox):
    with sandbox.client() as c, sandbox.expect_violations() as seen:
        c.get("/uploads/quota-check", params={"file_count": 1, "bogus": 2})
        c.post(
            "/user-files/upload/stream-batch",
            files={"file": ("a.png", png())},
            data={"storage_target": "default"},
        )
    assert any("'bogus'" in v for v in seen)
    assert any("'files' missing" in v for v in seen)
    assert any("'file' is not in the spec" in v for v in seen)
