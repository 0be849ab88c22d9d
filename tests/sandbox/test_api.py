"""Auth, error shapes, request ids, user-files listing and details."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.contract import DEVIATIONS, UNSERVED, effective_spec
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
        wrong = c.get("/uploads/confirm")
        trace = c.request("TRACE", "/user-files")
        on_template = c.delete(f"/uploads/sessions/{uuid.uuid4()}/status")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert trace.status_code == 405 and trace.headers["allow"] == "GET"
    assert trace.json()["error"] == "METHOD_NOT_ALLOWED"  # the flat shape of /user-files
    assert on_template.status_code == 405 and on_template.headers["allow"] == "GET"


@pytest.mark.parametrize(("method", "path"), sorted(UNSERVED))
def test_unserved_spec_operations_answer_404_in_the_documented_shape(sandbox, method, path):
    concrete = path.removeprefix("/api/v2").replace("{batch_id}", str(uuid.uuid4()))
    with sandbox.client() as c, sandbox.expect_violations() as seen:
        r = c.request(method, concrete)  # without the body the spec asks for
    assert r.status_code == 404
    assert [v for v in seen if "404" in v] == []  # the middleware found the shape documented
    doc = r.json()
    message = doc["message"] if path.startswith("/api/v2/user-files") else doc["error"]["message"]
    assert concrete in message


def test_user_files_query_parameters_are_validated_as_typed(sandbox):
    with sandbox.client() as c:
        [image_id] = _upload(c, 1)
        later = "2999-01-01T00:00:00Z"
        ok = {
            "has_description": c.get("/user-files", params={"has_description": "false"}),
            "described": c.get("/user-files", params={"has_description": "true"}),
            "ids": c.get("/user-files", params={"ids": [image_id, str(uuid.uuid4())]}),
            "until": c.get("/user-files", params={"date_to": later}),
            "since": c.get("/user-files", params={"date_from": later}),
            "folder": c.get("/user-files", params={"folder_id": str(uuid.uuid4())}),
        }
        with sandbox.expect_violations() as seen:
            bad = {
                name: c.get("/user-files", params={name: value}).json()["detail"][0]
                for name, value in [
                    ("has_description", "AAA"),
                    ("date_from", "yesterday"),
                    ("date_to", "2024-01-01T00:00:00"),  # RFC 3339 wants a zone
                    ("ids", "not-a-uuid"),
                    ("folder_id", "x"),
                    ("search_mode", "everything"),
                    ("sort_by", "colour"),
                ]
            }
    assert {name: len(r.json()["files"]) for name, r in ok.items()} == {
        "has_description": 1,
        "described": 0,  # the sandbox writes no descriptions
        "ids": 1,
        "until": 1,
        "since": 0,
        "folder": 0,  # nor has folders
    }
    assert {name: d["loc"] for name, d in bad.items()} == {name: ["query", name] for name in bad}
    assert len(seen) == len(bad)  # each one is also outside the (amended) spec


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


@pytest.mark.parametrize("deviation", DEVIATIONS, ids=lambda d: d.where)
def test_each_listed_deviation_still_departs_from_the_spec(deviation):
    """A deviation the spec has caught up with (or a typo'd path) is stale: drop it."""
    assert deviation.why
    assert effective_spec(deviations=[deviation]) != effective_spec(deviations=[])
