"""The presigned flow: request, PUT, confirm; expiry; idempotency; batch prepare/confirm."""

from __future__ import annotations

import hashlib

import httpx

from tests.sandbox.files import jpeg, png

DATA = jpeg(7, 3000)


def _request(c: httpx.Client, **kw: object) -> httpx.Response:
    body = {"filename": "big.jpg", "content_type": "image/jpeg", "size_bytes": len(DATA)}
    body.update(kw)
    return c.post("/uploads/request-presigned-url", json=body)


def _put(answer: dict, data: bytes = DATA) -> httpx.Response:
    return httpx.put(answer["upload_url"], content=data, headers=answer["upload_headers"])


def test_request_put_confirm(sandbox):
    with sandbox.client() as c:
        answer = _request(c, idempotency_key="unique-retry-key-123").json()
        assert answer["upload_method"] == "PUT"
        assert answer["upload_headers"] == {"Content-Type": "image/jpeg"}
        assert answer["upload_url"].startswith(sandbox.admin_url + "/upload/")
        assert answer["expires_at"].endswith("Z")
        put = _put(answer)
        assert put.status_code == 200 and put.headers["etag"]
        sha = hashlib.sha256(DATA).hexdigest()
        body = {"object_key": answer["object_key"], "size_bytes": len(DATA), "checksum": sha}
        confirmed = c.post("/uploads/confirm", json=body).json()
        again = c.post("/uploads/confirm", json=body).json()
        status = c.get(f"/uploads/status/{confirmed['upload_id']}").json()
        detail = c.get(f"/user-files/{confirmed['upload_id']}").json()
    assert confirmed["confirmed"] is True and confirmed["object_key"] == answer["object_key"]
    assert again == confirmed  # confirming twice is harmless
    assert status["unified_status"] == "completed" and status["is_terminal"] is True
    assert detail["upload_method"] == "PRESIGNED" and detail["hash"] == sha
    [stored] = sandbox.files()
    assert stored["sha256"] == sha and stored["size_bytes"] == len(DATA)


def test_confirm_checks_arrival_and_size(sandbox):
    with sandbox.client() as c:
        answer = _request(c).json()
        key = answer["object_key"]
        early = c.post("/uploads/confirm", json={"object_key": key, "size_bytes": len(DATA)})
        _put(answer, DATA[:-1])
        short = c.post("/uploads/confirm", json={"object_key": key, "size_bytes": len(DATA)})
        unknown = c.post("/uploads/confirm", json={"object_key": "nope", "size_bytes": 1})
    assert early.status_code == 400 and early.json()["error"]["code"] == "OBJECT_NOT_UPLOADED"
    assert short.status_code == 400 and short.json()["error"]["code"] == "SIZE_MISMATCH"
    assert unknown.status_code == 404
    assert sandbox.files() == []


def test_put_checks_signature_content_type_and_expiry(sandbox_factory):
    sb = sandbox_factory(presign_ttl_s=-1)  # every URL is born expired
    with sb.client() as c:
        answer = _request(c).json()
    expired = _put(answer)
    base = answer["upload_url"].split("?")[0]
    unsigned = httpx.put(base, content=DATA, headers=answer["upload_headers"])
    tampered = httpx.put(answer["upload_url"][:-4] + "0000", content=DATA)
    assert expired.status_code == 403 and expired.json()["error"]["code"] == "REQUEST_EXPIRED"
    assert unsigned.status_code == 403
    assert tampered.status_code == 403


def test_put_needs_the_signed_content_type(sandbox):
    with sandbox.client() as c:
        answer = _request(c).json()
    r = httpx.put(answer["upload_url"], content=DATA, headers={"Content-Type": "image/png"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "SIGNATURE_DOES_NOT_MATCH"


def test_idempotency_same_key_same_answer_different_request_409(sandbox):
    with sandbox.client() as c:
        first = _request(c, idempotency_key="k-1").json()
        same = _request(c, idempotency_key="k-1").json()
        different = _request(c, idempotency_key="k-1", size_bytes=len(DATA) + 1)
        other_key = _request(c, idempotency_key="k-2").json()
    assert same == first
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert other_key["object_key"] != first["object_key"]


def test_presigned_request_validation(sandbox):
    with sandbox.client() as c, sandbox.expect_violations():
        unsupported = _request(c, filename="a.exe", content_type="application/x-msdownload")
        zero = _request(c, size_bytes=0)
        missing = c.post("/uploads/request-presigned-url", json={"filename": "a.jpg"})
        huge = _request(c, size_bytes=5 * 1024**3 + 1)
    assert unsupported.status_code == 422
    assert unsupported.json()["detail"][0]["loc"] == ["body", "content_type"]
    assert huge.status_code == 422 and huge.json()["detail"][0]["type"] == "less_than_equal"
    assert zero.status_code == 422 and zero.json()["detail"][0]["type"] == "greater_than"
    assert {d["loc"][-1] for d in missing.json()["detail"]} <= {"content_type", "size_bytes"}


def _prepare_body(n: int, **extra: object) -> dict:
    files = [
        {"filename": f"f{i}.png", "size_bytes": len(png(seed=i)), "content_type": "image/png"}
        for i in range(n)
    ]
    return {"files": files, "intent": "describe", **extra}


def test_batch_prepare_put_confirm_status(sandbox):
    with sandbox.client() as c:
        prep = c.post("/uploads/batch-prepare", json=_prepare_body(3)).json()
        urls = prep["presigned_urls"]
        assert [u["file_index"] for u in urls] == [0, 1, 2]
        for i, u in enumerate(urls[:2]):
            assert _put(u, png(seed=i)).status_code == 200
        confirmations = [
            {"object_key": u["object_key"], "success": True, "file_size": len(png(seed=i))}
            for i, u in enumerate(urls)
        ]
        doc = c.post(
            "/uploads/batch-confirm",
            json={"batch_id": prep["batch_id"], "confirmations": confirmations},
        ).json()
        status = c.get(f"/uploads/batch/{prep['batch_id']}/status").json()
        session = c.get(f"/uploads/sessions/{prep['batch_id']}/status").json()
    assert (doc["successful_uploads"], doc["failed_uploads"]) == (2, 1)
    assert doc["failed_files"] == [urls[2]["object_key"]]
    assert [s["image_id"] for s in doc["stored_images"]] == [u["image_id"] for u in urls[:2]]
    assert status["counts"]["completed"] == 2 and status["counts"]["failed"] == 1
    assert session["status"] == "completed" and session["failed_files"] == 1
    assert len(sandbox.files()) == 2


def test_batch_prepare_allows_at_most_five(sandbox):
    with sandbox.client() as c, sandbox.expect_violations() as seen:
        r = c.post("/uploads/batch-prepare", json=_prepare_body(6))
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "too_long"
    assert any("too long" in v or "maxItems" in v or "is too long" in v for v in seen)


def test_batch_prepare_idempotency(sandbox):
    def keyed(size_extra: int = 0) -> dict:
        body = _prepare_body(2)
        for i, f in enumerate(body["files"]):
            f["idempotency_key"] = f"run1.key{i}"
            f["size_bytes"] += size_extra
        return body

    with sandbox.client() as c:
        first = c.post("/uploads/batch-prepare", json=keyed()).json()
        same = c.post("/uploads/batch-prepare", json=keyed()).json()
        changed = c.post("/uploads/batch-prepare", json=keyed(size_extra=1))
    assert same == first
    assert changed.status_code == 409


def test_failing_presigned_puts_fault(sandbox):
    sandbox.set_faults(presign_fail_rate=1.0)
    with sandbox.client() as c:
        answer = _request(c).json()
    assert _put(answer).status_code == 500
    sandbox.set_faults(presign_fail_rate=0.0)
    assert _put(answer).status_code == 200
