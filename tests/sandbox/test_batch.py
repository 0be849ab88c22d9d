"""upload/stream-batch and the upload sessions it creates."""

from __future__ import annotations

import uuid

import pytest

from tests.sandbox.files import jpeg, png

BATCH = "/user-files/upload/stream-batch"


def _files(n: int, start: int = 0) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"p{i}.png", png(seed=i), "image/png")) for i in range(start, start + n)]


def test_small_batch_has_immediate_results(sandbox):
    with sandbox.client() as c:
        r = c.post(BATCH, files=_files(3), data={"tags": "a,b"})
    doc = r.json()
    assert r.status_code == 200, doc
    assert (doc["total_files"], doc["accepted_files"], doc["rejected_files"]) == (3, 3, 0)
    assert doc["status"] == "completed" and doc["rejections"] is None
    assert [x["filename"] for x in doc["immediate_results"]] == ["p0.png", "p1.png", "p2.png"]
    assert doc["status_url"] == f"/api/v2/uploads/sessions/{doc['session_id']}/status"
    assert doc["websocket_channel"] == f"batch.{doc['session_id']}"
    assert {f["id"] for f in sandbox.files()} == {x["image_id"] for x in doc["immediate_results"]}
    assert all(f["tags"] == ["a", "b"] for f in sandbox.files())


def test_batches_over_five_have_no_immediate_results(sandbox):
    with sandbox.client() as c:
        five = c.post(BATCH, files=_files(5)).json()
        six = c.post(BATCH, files=_files(6, start=10)).json()
        status = c.get(f"/uploads/sessions/{six['session_id']}/status").json()
    assert len(five["immediate_results"]) == 5
    assert six["immediate_results"] is None and six["status"] == "processing"
    assert status["status"] == "completed"
    assert (status["total_files"], status["completed_files"], status["pending_files"]) == (6, 6, 0)
    assert status["progress_percentage"] == 100.0
    assert len(sandbox.files()) == 11


@pytest.mark.parametrize(("tier", "limit"), [("FREE", 10), ("STARTER", 20), ("ENTERPRISE", 50)])
def test_batch_over_the_tier_limit_is_refused(sandbox_factory, tier, limit):
    sb = sandbox_factory(tier=tier)
    tiny = [("files", (f"f{i}.jpg", jpeg(i), "image/jpeg")) for i in range(limit + 1)]
    with sb.client() as c:
        over = c.post(BATCH, files=tiny)
        at = c.post(BATCH, files=tiny[:limit])
    assert over.status_code == 413
    assert over.json()["error"]["details"]["max_files"] == limit
    assert at.status_code == 200 and at.json()["accepted_files"] == limit
    assert len(sb.files()) == limit  # nothing of the refused batch was kept


def test_bad_files_become_rejections_and_the_rest_go_on(sandbox):
    files = [
        ("files", ("ok.png", png(seed=1), "image/png")),
        ("files", ("virus.exe", b"MZ....", "application/octet-stream")),
        ("files", ("empty.jpg", b"", "image/jpeg")),
    ]
    with sandbox.client() as c:
        doc = c.post(BATCH, files=files).json()
        results = c.get(f"/uploads/sessions/{doc['session_id']}/results").json()
    assert (doc["accepted_files"], doc["rejected_files"]) == (1, 2)
    assert [(x["index"], x["filename"], x["retryable"]) for x in doc["rejections"]] == [
        (1, "virus.exe", False),
        (2, "empty.jpg", False),
    ]
    assert "Unsupported file type" in doc["rejections"][0]["reason"]
    assert [x["status"] for x in results["results"]] == ["completed", "failed", "failed"]
    assert results["summary"]["failed"] == 2


def test_skip_duplicates_in_a_batch(sandbox):
    with sandbox.client() as c:
        c.post(BATCH, files=_files(2))
        doc = c.post(BATCH, files=_files(3), data={"skip_duplicates": "true"}).json()
    statuses = [x["status"] for x in doc["immediate_results"]]
    assert statuses == ["skipped", "skipped", "completed"]
    assert len(sandbox.files()) == 3


def test_session_results_are_paginated(sandbox):
    with sandbox.client() as c:
        sid = c.post(BATCH, files=_files(12)).json()["session_id"]
        pages, offset = [], 0
        while True:
            page = c.get(f"/uploads/sessions/{sid}/results", params={"offset": offset, "limit": 5})
            doc = page.json()
            pages.append(doc)
            offset += len(doc["results"])
            if not doc["has_more"]:
                break
    assert [len(p["results"]) for p in pages] == [5, 5, 2]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert all(p["total_count"] == 12 for p in pages)
    names = [r["filename"] for p in pages for r in p["results"]]
    assert names == [f"p{i}.png" for i in range(12)]


def test_sessions_are_listed_newest_first_and_filtered(sandbox):
    with sandbox.client() as c:
        first = c.post(BATCH, files=_files(1)).json()["session_id"]
        second = c.post(BATCH, files=_files(1, start=5)).json()["session_id"]
        prepared = c.post(
            "/uploads/batch-prepare",
            json={
                "files": [{"filename": "a.jpg", "size_bytes": 10, "content_type": "image/jpeg"}],
                "intent": "describe",
            },
        ).json()["batch_id"]
        everything = c.get("/uploads/sessions").json()
        streaming = c.get("/uploads/sessions", params={"upload_method": "streaming"}).json()
        page = c.get("/uploads/sessions", params={"limit": 1, "offset": 1}).json()
    assert [s["session_id"] for s in everything["sessions"]] == [prepared, second, first]
    assert [s["session_id"] for s in streaming["sessions"]] == [second, first]
    assert page["sessions"][0]["session_id"] == second and page["has_more"] is True


def test_cancel_a_pending_session_but_not_a_finished_one(sandbox):
    with sandbox.client() as c:
        done = c.post(BATCH, files=_files(1)).json()["session_id"]
        pending = c.post(
            "/uploads/batch-prepare",
            json={
                "files": [{"filename": "a.jpg", "size_bytes": 10, "content_type": "image/jpeg"}],
                "intent": "describe",
            },
        ).json()["batch_id"]
        cancelled = c.post(f"/uploads/sessions/{pending}/cancel")
        refused = c.post(f"/uploads/sessions/{done}/cancel")
        listed = c.get("/uploads/sessions", params={"status": "cancelled"}).json()
        missing = c.get(f"/uploads/sessions/{uuid.uuid4()}/status")
        with sandbox.expect_violations():
            not_uuid = c.get("/uploads/sessions/not-a-uuid/status")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "SESSION_NOT_CANCELLABLE"
    assert [s["session_id"] for s in listed["sessions"]] == [pending]
    assert missing.status_code == 404
    assert not_uuid.status_code == 422
