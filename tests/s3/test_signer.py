"""The lean GET is safe: its requests are botocore's, signed as botocore signs them.

Two checks, both against botocore itself:

- *Built as botocore builds it.* A real client from :class:`S3Client` (virtual-hosted and
  path-style, regions other than us-east-1, temporary credentials with a session token)
  prepares GetObject for keys that need encoding; the request is caught just before it
  would leave. The lean URL for each key must equal botocore's, and the lean headers must
  carry the signature botocore's own ``S3SigV4Auth`` computes for them.
- *Accepted by a strict server.* A local S3 on 127.0.0.1 that checks every request's
  SigV4 signature with botocore's signer and knows only the current keys: reads through the
  lean path before and after the credentials are refreshed mid-run (new keys, new token,
  the old ones refused from then on), fallbacks counted by cause and logged once, and the
  setting that turns the lean path off.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiohttp import web
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from ingest.s3.client import S3Client, S3Config
from ingest.s3.lean import Fallbacks, Signer, Template, quote_key
from tests.fixtures.ports import free_port

BUCKET = "bkt"
KEYS = [
    "plain.jpg",
    "ünï/cödé 雪.png",
    "with space/and+plus.jpg",
    "per%cent%2F/eq=ual~tilde.jpg",
    "runs//of///slashes/x.jpg",
    "/leading-slash.jpg",
    "sym!$&'()*,;:@[]-_.jpg",
]
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, "
    r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$"
)


def _botocore_signature(
    url: str, headers: dict[str, str], creds: ReadOnlyCredentials, region: str
) -> str:
    """The Authorization botocore's S3SigV4Auth gives a GET of ``url`` with ``headers``
    (those it signs, at their ``x-amz-date``)."""
    request = AWSRequest(method="GET", url=url, headers=headers)
    request.context["timestamp"] = headers["x-amz-date"]
    auth = S3SigV4Auth(Credentials(creds.access_key, creds.secret_key, creds.token), "s3", region)
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    names = ";".join(sorted(headers))
    day = headers["x-amz-date"][:8]
    return (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{day}/{region}/s3/aws4_request, "
        f"SignedHeaders={names}, Signature={signature}"
    )


class _Caught(Exception):
    """Raised from ``before-send``: the request botocore would have sent."""


async def _botocore_request(client: Any, key: str) -> tuple[str, dict[str, str]]:
    with pytest.raises(_Caught) as caught:
        await client.get_object(Bucket=BUCKET, Key=key, IfMatch='"abc"')
    url, headers = caught.value.args
    return url, {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in headers.items()}


def _catch(request: Any, **_: Any) -> None:
    raise _Caught(str(request.url), dict(request.headers))


@pytest.mark.parametrize(
    ("style", "region", "endpoint", "base"),
    [
        ("virtual", "eu-west-3", None, "https://bkt.s3.eu-west-3.amazonaws.com/"),
        ("path", "ap-southeast-2", None, "https://s3.ap-southeast-2.amazonaws.com/bkt/"),
        ("path", "eu-central-1", "http://127.0.0.1:9", "http://127.0.0.1:9/bkt/"),
    ],
)
async def test_lean_requests_are_botocores(
    style: Literal["path", "virtual"],
    region: str,
    endpoint: str | None,
    base: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIATEMPORARY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "se/cr+et=")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjE/+token==")
    config = S3Config(endpoint_url=endpoint, region=region, addressing_style=style)
    s3 = S3Client(config)
    try:
        client = await s3.client()
        client.meta.events.register_first("before-send.s3.GetObject", _catch)
        first_url, first = await _botocore_request(client, KEYS[0])
        template = Template.learn(first_url, first["authorization"], BUCKET, KEYS[0])
        assert template is not None and template.base == base
        assert template.region == region
        creds = await client._request_signer._credentials.get_frozen_credentials()
        for key in KEYS:
            url, theirs = await _botocore_request(client, key)
            assert template.base + quote_key(key) == url, key
            now = dt.datetime.strptime(theirs["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(
                tzinfo=dt.UTC
            )
            path = urllib.parse.urlsplit(url).path
            ours = Signer().headers(template, path, "", creds, '"abc"', now)
            assert ours["x-amz-security-token"] == theirs["x-amz-security-token"]
            signed = {
                k: v for k, v in ours.items() if k not in ("authorization", "accept-encoding")
            }
            assert ours["authorization"] == _botocore_signature(url, signed, creds, region), key
            # the same headers as botocore's, less its optional checksum request
            ours_names = _AUTH.match(ours["authorization"])
            theirs_names = _AUTH.match(theirs["authorization"])
            assert ours_names is not None and theirs_names is not None
            assert ours_names.group(4).split(";") == [
                n for n in theirs_names.group(4).split(";") if n != "x-amz-checksum-mode"
            ]
    finally:
        await s3.aclose()


class StrictS3:
    """One bucket on 127.0.0.1 that checks every request's SigV4 signature with botocore's
    signer and accepts only ``keys`` (access key → secret, token). ``seen`` records
    (access key, sent by the lean path?, object key) of every accepted GET;
    ``fail_lean`` answers that many lean GETs with 503."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.keys: dict[str, tuple[str, str | None]] = {}
        self.objects: dict[str, bytes] = {}
        self.seen: list[tuple[str, bool, str]] = []
        self.fail_lean = 0

    async def handle(self, request: web.Request) -> web.Response:
        match = _AUTH.match(request.headers.get("Authorization", ""))
        if match is None:
            return self._error(403, "AccessDenied")
        access, _, region, names, signature = match.groups()
        if access not in self.keys or region != self.region:
            return self._error(403, "InvalidAccessKeyId")
        secret, token = self.keys[access]
        if request.headers.get("x-amz-security-token") != token:
            return self._error(403, "InvalidToken")
        url = f"http://{request.host}{request.raw_path}"
        headers = {name: request.headers[name] for name in names.split(";")}
        expected = _botocore_signature(
            url, headers, ReadOnlyCredentials(access, secret, token), region
        )
        if expected.rsplit("=", 1)[1] != signature:
            return self._error(403, "SignatureDoesNotMatch")
        key = urllib.parse.unquote(request.raw_path.split("?")[0])[len(f"/{BUCKET}/") :]
        lean = "aiobotocore" not in request.headers.get("User-Agent", "")
        self.seen.append((access, lean, key))
        if lean and self.fail_lean > 0:
            self.fail_lean -= 1
            return self._error(503, "SlowDown")
        if key not in self.objects:
            return self._error(404, "NoSuchKey")
        return web.Response(body=self.objects[key], headers={"ETag": '"abc"'})

    @staticmethod
    def _error(status: int, code: str) -> web.Response:
        body = f"<Error><Code>{code}</Code><Message>{code}</Message></Error>"
        return web.Response(status=status, body=body.encode(), content_type="application/xml")


@pytest.fixture
async def strict_s3() -> AsyncIterator[tuple[StrictS3, str]]:
    server = StrictS3("ap-southeast-2")
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class _Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def _read_all(s3: S3Client, expected: dict[str, bytes]) -> None:
    for key, body in expected.items():
        stream = await s3.get(BUCKET, key, etag="abc")
        assert b"".join([chunk async for chunk in stream]) == body, key


async def test_credentials_refreshed_mid_run_sign_the_next_lean_gets(
    strict_s3: tuple[StrictS3, str],
) -> None:
    server, endpoint = strict_s3
    server.objects = {key: key.encode() * 3000 for key in KEYS}
    server.keys = {"ASIAFIRST": ("first/secret", "token-1")}
    clock = _Clock()
    issued = iter([("ASIASECOND", "second+secret", "token-2/==")])

    async def refresh() -> dict[str, str]:
        access, secret, token = next(issued)
        server.keys = {access: (secret, token)}  # the old keys stop working now
        expiry = clock.now + dt.timedelta(hours=1)
        return {
            "access_key": access,
            "secret_key": secret,
            "token": token,
            "expiry_time": expiry.isoformat(),
        }

    credentials = AioRefreshableCredentials(
        "ASIAFIRST",
        "first/secret",
        "token-1",
        clock.now + dt.timedelta(hours=1),
        refresh,
        "test",
        time_fetcher=clock,
    )
    fallbacks = Fallbacks()
    s3 = S3Client(
        S3Config(endpoint_url=endpoint, region="ap-southeast-2", addressing_style="path"),
        fallbacks=fallbacks,
    )
    try:
        client = await s3.client()
        client._request_signer._credentials = credentials
        await _read_all(s3, server.objects)
        clock.now += dt.timedelta(hours=2)  # past the expiry: the next GET refreshes
        await _read_all(s3, server.objects)
    finally:
        await s3.aclose()
    first, second = server.seen[: len(KEYS)], server.seen[len(KEYS) :]
    assert first[0] == ("ASIAFIRST", False, KEYS[0])  # the bucket's first GET: botocore's
    assert all(access == "ASIAFIRST" and lean for access, lean, _ in first[1:])
    assert second == [("ASIASECOND", True, key) for key in KEYS]  # lean, with the new keys
    assert fallbacks.counts() == dict.fromkeys(fallbacks.counts(), 0)


def _env_keys(monkeypatch: pytest.MonkeyPatch, server: StrictS3) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token-value")
    server.keys = {"ASIAENVIRONMENT": ("env-secret-value", "env-token-value")}


async def test_fallbacks_are_counted_by_cause_and_logged_once(
    strict_s3: tuple[StrictS3, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, endpoint = strict_s3
    server.objects = {key: key.encode() for key in KEYS}
    _env_keys(monkeypatch, server)
    server.fail_lean = 3
    fallbacks = Fallbacks()
    s3 = S3Client(S3Config(endpoint_url=endpoint, region="ap-southeast-2"), fallbacks=fallbacks)
    try:
        with caplog.at_level(logging.WARNING, logger="ingest.s3.lean"):
            await _read_all(s3, server.objects)
    finally:
        await s3.aclose()
    counts = fallbacks.counts()
    assert counts.pop("status") == 3
    assert set(counts.values()) == {0}
    warnings = [r for r in caplog.records if r.name == "ingest.s3.lean"]
    assert len(warnings) == 1 and "(status)" in warnings[0].getMessage()
    assert "value" not in warnings[0].getMessage()  # no secret or token in the log
    lean = [key for _, was_lean, key in server.seen if was_lean]
    assert lean == KEYS[1:]  # every lean GET was tried; 3 were settled by botocore instead
    assert sum(1 for _, was_lean, _ in server.seen if not was_lean) == 1 + 3


async def test_the_lean_path_can_be_turned_off(
    strict_s3: tuple[StrictS3, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, endpoint = strict_s3
    server.objects = {key: key.encode() for key in KEYS}
    _env_keys(monkeypatch, server)
    s3 = S3Client(S3Config(endpoint_url=endpoint, region="ap-southeast-2", lean_get=False))
    try:
        await _read_all(s3, server.objects)
        await _read_all(s3, server.objects)
    finally:
        await s3.aclose()
    assert [lean for _, lean, _ in server.seen] == [False] * (2 * len(KEYS))
