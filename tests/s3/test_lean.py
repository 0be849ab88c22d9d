"""The lean GET signs exactly as botocore does, reads the same bytes, fails the same way."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from ingest.errors import SourceItemError
from ingest.s3.client import S3Client, S3Config
from ingest.s3.lean import Signer, Template, quote_key
from tests.fixtures.s3 import S3Bucket

NOW = dt.datetime(2026, 11, 29, 1, 2, 3, tzinfo=dt.UTC)
KEYS = ["a.jpg", "deep/ünï cödé+(1)~%20&=.png", "dots/../x.jpg"]


def _botocore_headers(
    url: str, region: str, creds: ReadOnlyCredentials, if_match: str | None
) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url, headers={"If-Match": if_match} if if_match else {})
    S3SigV4Auth(creds, "s3", region).add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    "base", ["http://127.0.0.1:9000/bkt/", "https://bkt.s3.eu-west-3.amazonaws.com/"]
)
@pytest.mark.parametrize("token", [None, "tok/en=="])
@pytest.mark.parametrize("version", [None, "v 1/+="])
def test_signature_equals_botocores(
    key: str, base: str, token: str | None, version: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: NOW.replace(tzinfo=None))
    creds = ReadOnlyCredentials("AKIDEXAMPLE", "secret/key+x", token)
    template = Template(base, "eu-west-3", "s3")
    query = f"versionId={quote(version, safe='-_.~')}" if version else ""
    url = base + quote_key(key) + (f"?{query}" if query else "")
    path = url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
    ours = Signer().headers(template, "/" + path, query, creds, '"abc"', NOW)
    theirs = _botocore_headers(url, "eu-west-3", creds, '"abc"')
    for name in ("authorization", "x-amz-date", "x-amz-content-sha256"):
        assert ours[name] == theirs[name], name
    assert ours.get("x-amz-security-token") == theirs.get("x-amz-security-token")


def test_templates_are_learned_only_from_plain_requests() -> None:
    auth = "AWS4-HMAC-SHA256 Credential=AK/20261129/us-east-1/s3/aws4_request, SignedHeaders=x"
    learned = Template.learn("http://h:1/b/k%20x", auth, "b", "k x")
    assert learned is not None and learned.base == "http://h:1/b/" and learned.host == "h:1"
    hosted = Template.learn("https://b.s3.amazonaws.com/k", auth, "b", "k")
    assert hosted is not None and hosted.base == "https://b.s3.amazonaws.com/"
    assert Template.learn("http://h:1/other/k", auth, "b", "k") is None  # another bucket
    assert Template.learn("http://h:1/b/k?versionId=1", auth, "b", "k") is None
    express = auth.replace("/s3/", "/s3express/")
    assert Template.learn("http://h:1/b/k", express, "b", "k") is None
    assert Template.learn("http://h:1/b/k", "AWS4-ECDSA-P256-SHA256 Credential=x", "b", "k") is None


async def test_reads_lean_after_the_first_get(s3_bucket: S3Bucket) -> None:
    bodies = {key: key.encode() * 50_000 for key in KEYS}  # several chunks each
    etags = {key: s3_bucket.put(key, body)["ETag"].strip('"') for key, body in bodies.items()}
    client = S3Client(S3Config(endpoint_url=s3_bucket.endpoint_url))
    try:
        for _ in range(2):
            for key, body in bodies.items():
                stream = await client.get(s3_bucket.name, key, etag=etags[key])
                assert stream.size == len(body)
                assert b"".join([c async for c in stream]) == body
                await stream.aclose()
            assert s3_bucket.name in client._templates  # the second round went lean
        assert client._sent == {}  # after the first GET, none went through botocore

        s3_bucket.put("a.jpg", b"replaced")
        with pytest.raises(SourceItemError, match="changed since planning"):
            await client.get(s3_bucket.name, "a.jpg", etag=etags["a.jpg"])
        with pytest.raises(SourceItemError, match="gone"):
            await client.get(s3_bucket.name, "never-there.jpg")
        assert client._sent == {}  # settled by the lean GET, not botocore's
    finally:
        await client.aclose()
