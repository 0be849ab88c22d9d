import hashlib

import httpx

from tests.sandbox.files import jpeg


def test_stream_roundtrip(sandbox):
    data = jpeg(1, 2000)
    r = httpx.post(
        f"{sandbox.base_url}/user-files/upload/stream",
        headers=sandbox.headers,
        files={"file": ("a.jpg", data, "image/jpeg")},
        data={"title": "T", "tags": "x,y"},
    )
    assert r.status_code == 200, r.text
    files = sandbox.files()
    assert files[0]["sha256"] == hashlib.sha256(data).hexdigest()
