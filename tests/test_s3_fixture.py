"""The moto fixture gives each test its own bucket on one loopback server."""

from __future__ import annotations

from tests.fixtures.s3 import S3Bucket


def test_bucket_is_fresh_and_reachable(s3_bucket: S3Bucket) -> None:
    assert s3_bucket.endpoint_url.startswith("http://127.0.0.1:")
    s3_bucket.put("a/b.txt", b"hello")
    listed = s3_bucket.server.client().list_objects_v2(Bucket=s3_bucket.name)
    assert [o["Key"] for o in listed["Contents"]] == ["a/b.txt"]
