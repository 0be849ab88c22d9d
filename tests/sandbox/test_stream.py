"""upload/stream: happy paths per format, limits, duplicates, quota, the disk store."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

import httpx
import pytest

from ingest.demo.generated import GeneratedStream
from tests.sandbox.files import PDF, docx, jpeg, png

STREAM = "/user-files/upload/stream"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
BOUNDARY = "sandboxboundary"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8 " + bytes(14)


def test_stream_upload_answers_the_documented_keys(sandbox):
    data = jpeg(1, 2000)
    with sandbox.client() as c:
        r = c.post(
            STREAM,
            files={"file": ("photo.jpg", data, "image/jpeg")},
            data={"title": "Site Inspection", "tags": "inspection,site"},
            headers={"X-Request-ID": "req-123"},
        )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "req-123"
    doc = r.json()
    assert doc["upload_method"] == "STREAMING"
    assert doc["status"] == "completed"
    assert doc["skipped"] is False and doc["skipped_existing_image_id"] is None
    assert doc["media_type"] == "image" and doc["document_type"] is None
    assert doc["object_key"].endswith("/photo.jpg")
    uuid.UUID(doc["image_id"])
    [stored] = sandbox.files()
    assert stored["id"] == doc["image_id"]
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored["title"] == "Site Inspection"
    assert stored["tags"] == ["inspection", "site"]
    assert stored["size_bytes"] == len(data)


@pytest.mark.parametrize(
    ("name", "data", "media", "doc_type"),
    [
        ("a.png", png(), "image", None),
        ("a.gif", GIF, "image", None),
        ("a.webp", WEBP, "image", None),
        ("noext", jpeg(2), "image", None),
        ("a.pdf", PDF, "document", "pdf"),
        ("a.docx", docx(), "document", "docx"),
        ("a.txt", "héllo\n".encode(), "document", "txt"),
        ("a.md", b"# title\n", "document", "md"),
    ],
)
def test_every_supported_format_is_accepted(sandbox, name, data, media, doc_type):
    with sandbox.client() as c:
        r = c.post(STREAM, files={"file": (name, data)})
    assert r.status_code == 200, r.text
    assert (r.json()["media_type"], r.json()["document_type"]) == (media, doc_type)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.exe", b"MZ\x90\x00binary"),
        ("a.zip", docx()),
        ("a.txt", b"\x00\x01\x02binary"),
        ("photo.bmp", jpeg(3)),
        ("a.csv", b"a,b\n1,2\n"),
    ],
)
def test_unsupported_files_get_422_as_the_spec_declares(sandbox, name, data):
    with sandbox.client() as c:
        r = c.post(STREAM, files={"file": (name, data)})
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert detail["loc"] == ["body", "file"] and detail["type"] == "unsupported_file_type"
    assert "Unsupported file type" in detail["msg"] and "JPEG" in detail["msg"]
    assert sandbox.files() == []


def test_title_over_255_is_a_422_validation_error(sandbox):
    with sandbox.client() as c, sandbox.expect_violations():
        r = c.post(STREAM, files={"file": ("a.jpg", jpeg())}, data={"title": "x" * 256})
        ok = c.post(STREAM, files={"file": ("a.jpg", jpeg())}, data={"title": "x" * 255})
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert detail["loc"] == ["body", "title"] and detail["type"] == "string_too_long"
    assert ok.status_code == 200


def test_missing_file_and_bad_boolean_are_422(sandbox):
    with sandbox.client() as c, sandbox.expect_violations() as seen:
        missing = c.post(STREAM, files={"other": ("a.jpg", jpeg())})
        bad = [
            c.post(STREAM, files={"file": ("a.jpg", jpeg())}, data={"skip_duplicates": value})
            for value in ("maybe", "1", "yes", " true")  # a JSON boolean's spellings only
        ]
        good = c.post(STREAM, files={"file": ("a.jpg", jpeg())}, data={"skip_duplicates": "True"})
    assert missing.json()["detail"][0]["loc"] == ["body", "file"]
    assert [r.json()["detail"][0]["type"] for r in bad] == ["bool_parsing"] * 4
    assert good.status_code == 200  # Python's requests sends True as "True"
    assert any("'file' missing" in v for v in seen)  # the contract check saw it too


def _big_body(size: int) -> Iterator[bytes]:
    boundary = BOUNDARY
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode()
    yield b"\xff\xd8\xff\xe0"
    yield from GeneratedStream(size - 4, seed=1, chunk_size=1024 * 1024).iter_sync()
    yield f"\r\n--{boundary}--\r\n".encode()


def test_a_file_over_100_mb_gets_413_after_streaming(sandbox):
    size = 100 * 1024 * 1024 + 1
    r = httpx.post(
        f"{sandbox.base_url}{STREAM}",
        headers={
            **sandbox.headers,
            "Content-Type": "multipart/form-data; boundary=sandboxboundary",
        },
        content=_big_body(size),
        timeout=60,
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "FILE_TOO_LARGE"
    assert sandbox.files() == []
    stats = sandbox.stats()
    assert stats["by_status"] == {"413": 1}
    assert stats["bytes_received"] > size  # the whole body streamed through


def test_empty_file_is_refused(sandbox):
    with sandbox.client() as c:
        r = c.post(STREAM, files={"file": ("a.jpg", b"")})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "EMPTY_FILE"


def test_skip_duplicates_answers_the_existing_id(sandbox):
    data = png(seed=5)
    with sandbox.client() as c:
        first = c.post(STREAM, files={"file": ("a.png", data)}).json()
        again = c.post(STREAM, files={"file": ("b.png", data)}, data={"skip_duplicates": "true"})
        plain = c.post(STREAM, files={"file": ("c.png", data)})
    doc = again.json()
    assert doc["skipped"] is True and doc["status"] == "skipped"
    assert doc["skipped_existing_image_id"] == first["image_id"]
    assert plain.json()["skipped"] is False  # without the flag a duplicate is stored again
    assert len(sandbox.files()) == 2
    assert sandbox.stats()["uploads"] == 2


def test_check_duplicates_answers_from_the_same_store(sandbox):
    data = png(seed=9)
    known = hashlib.sha256(data).hexdigest()
    other = hashlib.sha256(b"nope").hexdigest()
    with sandbox.client() as c:
        c.post(STREAM, files={"file": ("a.png", data)})
        r = c.post("/uploads/check-duplicates", json={"hashes": [known.upper(), other]})
        with sandbox.expect_violations():
            empty = c.post("/uploads/check-duplicates", json={"hashes": []})
            many = c.post("/uploads/check-duplicates", json={"hashes": [other] * 501})
    assert r.json() == {"duplicates": [known.upper()], "unique": [other]}
    assert empty.status_code == 422 and many.status_code == 422


def test_quota_is_reported_and_enforced(sandbox_factory):
    sb = sandbox_factory(quota=2)
    with sb.client() as c:
        before = c.get("/uploads/quota-check", params={"file_count": 3}).json()
        for seed in range(2):
            assert c.post(STREAM, files={"file": ("a.png", png(seed=seed))}).status_code == 200
        after = c.get("/uploads/quota-check", params={"file_count": 1}).json()
        refused = c.post(STREAM, files={"file": ("a.png", png(seed=7))})
    assert before == {
        "can_proceed": False,
        "requested": 3,
        "available": 2,
        "monthly_limit": 2,
        "current_usage": 0,
        "message": before["message"],
    }
    assert "quota" in before["message"]
    assert after["can_proceed"] is False and after["available"] == 0
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "QUOTA_EXCEEDED"


def test_free_tier_preset_quota_and_unlimited_enterprise(sandbox_factory, sandbox):
    free = sandbox_factory(tier="FREE")
    with free.client() as c:
        assert c.get("/uploads/quota-check?file_count=10").json()["monthly_limit"] == 1000
    with sandbox.client() as c:
        doc = c.get("/uploads/quota-check?file_count=10").json()
    assert doc["can_proceed"] is True and doc["monthly_limit"] is None


def test_disk_store_keeps_bytes_and_survives_a_restart(sandbox_factory, tmp_path):
    data = jpeg(4, 5000)
    sb = sandbox_factory(store="disk", data_dir=tmp_path)
    with sb.client() as c:
        image_id = c.post(STREAM, files={"file": ("a.jpg", data)}).json()["image_id"]
    assert (tmp_path / "objects" / image_id).read_bytes() == data
    sb.stop()
    again = sandbox_factory(store="disk", data_dir=tmp_path)
    with again.client() as c:
        r = c.post(STREAM, files={"file": ("b.jpg", data)}, data={"skip_duplicates": "true"})
    assert r.json()["skipped_existing_image_id"] == image_id
    assert not list((tmp_path / "tmp").iterdir())  # no temp parts left behind
