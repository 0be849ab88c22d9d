"""The client on the wire, over both HTTP engines, against a scripted local server."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import logging
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ingest.api import FileSpec, SizeMismatch, attempts_of
from ingest.demo.generated import GeneratedStream
from ingest.errors import FatalError, ItemRejected, RateLimited, RetryableError
from ingest.streams import BytesStream, ByteStream
from tests.api.conftest import (
    API_KEY,
    FakeClock,
    Handler,
    MakeClient,
    ScriptedServer,
    drop,
    reply,
    stall,
)
from tests.api.test_multipart import parse

STREAM = "/api/v2/user-files/upload/stream"
STREAM_OK = {
    "image_id": "550e8400-e29b-41d4-a716-446655440000",
    "object_key": "uploads/t/u/photo.jpg",
    "upload_method": "STREAMING",
    "status": "completed",
    "processing_time_ms": 12.5,
    "s3_upload_completed": True,
    "variants_queued": True,
    "description_queued": True,
    "skipped": False,
    "skipped_existing_image_id": None,
    "a_field_from_the_future": {"x": 1},
}


class CountingOpener:
    """Opens a generated stream, counting how often (each attempt re-opens)."""

    def __init__(self, size: int, seed: int = 1) -> None:
        self.size, self.seed, self.opened = size, seed, 0

    async def __call__(self) -> ByteStream:
        self.opened += 1
        return GeneratedStream(self.size, seed=self.seed)

    def spec(self, name: str = "photo.jpg") -> FileSpec:
        return FileSpec(name, self.size, "image/jpeg", open=self)


async def test_stream_upload_sends_an_exact_length_multipart_body(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    server.script(STREAM, reply(200, STREAM_OK))
    opener = CountingOpener(3 * 1024 * 1024 + 17)
    result = await make_client().upload_stream(
        opener.spec("site photo é.jpg"), title="Site", tags=["a", "b"], skip_duplicates=True
    )
    assert result.image_id == STREAM_OK["image_id"]
    assert result.attempts == 1
    assert result.model_extra == {"a_field_from_the_future": {"x": 1}}
    (seen,) = server.on(STREAM)
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert re.fullmatch(r"[0-9a-f]{32}", seen.headers["X-Request-ID"])
    assert "Transfer-Encoding" not in seen.headers
    assert int(seen.headers["Content-Length"]) == len(seen.body)
    boundary = seen.headers["Content-Type"].split("boundary=")[1]
    parts = {o[b"name"].decode(): (o, data) for o, data in parse(seen.body, boundary)}
    assert parts["skip_duplicates"][1] == b"true"
    assert parts["tags"][1] == b"a,b"
    assert parts["title"][1] == b"Site"
    options, data = parts["file"]
    assert options[b"filename"].decode() == "site photo é.jpg"
    assert hashlib.sha256(data).hexdigest() == GeneratedStream(opener.size, seed=1).sha256()


async def test_429_waits_for_retry_after_on_the_fake_clock(
    server: ScriptedServer, make_client: MakeClient, clock: FakeClock
) -> None:
    date = email.utils.formatdate(clock.now + 7 + 30, usegmt=True)  # 30 s after the first wait
    server.script(
        STREAM,
        reply(
            429, {"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "slow"}}, {"Retry-After": "7"}
        ),
        reply(429, {"detail": "slow down"}, {"Retry-After": date}),
        reply(200, STREAM_OK),
    )
    opener = CountingOpener(1000)
    result = await make_client().upload_stream(opener.spec())
    assert clock.waits == [7.0, 30.0]
    assert result.attempts == 3
    assert opener.opened == 3  # the body was re-opened for every attempt
    ids = [s.headers["X-Request-ID"] for s in server.on(STREAM)]
    assert len(set(ids)) == 3


async def test_5xx_is_retried_with_backoff_then_given_up(
    server: ScriptedServer, make_client: MakeClient, clock: FakeClock
) -> None:
    server.script(STREAM, reply(503, {"error": "UNAVAILABLE", "message": "busy"}))
    with pytest.raises(RetryableError, match="busy") as caught:
        await make_client(max_attempts=4, backoff_base=1.0).upload_stream(CountingOpener(10).spec())
    assert attempts_of(caught.value) == 4
    assert len(server.on(STREAM)) == 4
    assert len(clock.waits) == 3
    assert all(0 <= w <= cap for w, cap in zip(clock.waits, [1.0, 2.0, 4.0], strict=True))


async def test_401_is_fatal_at_once_and_never_shows_the_key(
    server: ScriptedServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(STREAM, reply(401, {"error": {"code": "UNAUTHORIZED", "message": "bad key"}}))
    client = make_client()
    with pytest.raises(FatalError) as caught:
        await client.upload_stream(CountingOpener(10).spec())
    assert len(server.on(STREAM)) == 1
    assert caught.value.status == 401
    assert caught.value.request_id == server.on(STREAM)[0].headers["X-Request-ID"]
    for text in (str(caught.value), repr(caught.value), repr(client), caplog.text):
        assert API_KEY not in text


@pytest.mark.parametrize(("status", "words"), [(413, "too large"), (415, "unsupported")])
async def test_413_and_415_reject_the_item(
    server: ScriptedServer, make_client: MakeClient, status: int, words: str
) -> None:
    server.script(STREAM, reply(status, {"error": "X", "message": "no"}))
    with pytest.raises(ItemRejected, match=words):
        await make_client().upload_stream(CountingOpener(10).spec())
    assert len(server.on(STREAM)) == 1


async def test_a_dropped_connection_is_retried(
    server: ScriptedServer, make_client: MakeClient, clock: FakeClock
) -> None:
    server.script(STREAM, drop(), reply(200, STREAM_OK))
    result = await make_client().upload_stream(CountingOpener(5000).spec())
    assert result.attempts == 2
    assert len(clock.waits) == 1


async def test_a_stalled_answer_times_out_as_retryable(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    release = asyncio.Event()
    server.script("/api/v2/uploads/quota-check", stall(release))
    client = make_client(read_timeout=0.2, max_attempts=1)
    with pytest.raises(RetryableError, match="timed out"):
        await client.quota_check(5)
    release.set()


def trickle(body: bytes, every: float) -> Handler:
    """Answer 200 with ``body`` one byte at a time, ``every`` seconds apart (slowloris):
    each byte comes well inside any read timeout, the whole answer takes minutes."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        for i in range(len(body)):
            await response.write(body[i : i + 1])
            await asyncio.sleep(every)
        return response

    return handler


async def test_a_trickled_answer_hits_the_request_deadline_and_is_retried(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    answer = b'{"can_proceed": true}'
    server.script(
        "/api/v2/uploads/quota-check",
        trickle(answer + b" " * 2000, every=0.05),  # 100 s in all, a byte per 50 ms
        reply(200, {"can_proceed": True}),
    )
    client = make_client(read_timeout=1.0, request_deadline=0.5, max_attempts=2)
    result = await asyncio.wait_for(client.quota_check(5), timeout=30)
    assert result.can_proceed and result.attempts == 2
    # And with no attempt left, the deadline is the error, named as such.
    server.script("/api/v2/uploads/quota-check", trickle(answer + b" " * 2000, every=0.05))
    with pytest.raises(RetryableError, match="request_deadline"):
        await asyncio.wait_for(make_client(request_deadline=0.5, max_attempts=1).quota_check(5), 30)


async def test_a_source_failing_mid_body_fails_the_item_not_the_network(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    server.script(STREAM, reply(200, STREAM_OK))

    class Truncated(GeneratedStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in super().__aiter__():
                yield chunk[:100]
                return

    async def opener() -> ByteStream:
        return Truncated(600_000)

    with pytest.raises(SizeMismatch):
        await make_client().upload_stream(FileSpec("t.jpg", 600_000, "image/jpeg", open=opener))


async def test_an_unexpected_answer_shape_is_retryable(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    server.script("/api/v2/uploads/quota-check", reply(200, {"unexpected": True}))
    with pytest.raises(RetryableError, match="documented shape"):
        await make_client(max_attempts=1).quota_check(1)


async def test_presigned_put_streams_without_the_api_key(
    server: ScriptedServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(
        "/api/v2/uploads/request-presigned-url",
        reply(
            200,
            {
                "upload_url": server.url + "/bucket/big.jpg?X-Amz-Signature=topsecret",
                "upload_method": "PUT",
                "upload_headers": {"Content-Type": "image/jpeg"},
                "object_key": "uploads/t/u/big.jpg",
                "expires_at": "2025-01-15T10:40:00",
                "max_size_bytes": 104857600,
            },
        ),
    )
    server.script("/bucket/big.jpg", reply(200, ""))
    server.script(
        "/api/v2/uploads/confirm",
        reply(
            200,
            {
                "confirmed": True,
                "object_key": "uploads/t/u/big.jpg",
                "storage_path": "s",
                "upload_id": "u1",
            },
        ),
    )
    opener = CountingOpener(2 * 1024 * 1024)
    confirmed = await make_client().upload_presigned(opener.spec("big.jpg"), idempotency_key="k-1")
    assert confirmed.confirmed
    (put,) = server.on("/bucket/big.jpg")
    assert put.method == "PUT"
    assert "Authorization" not in put.headers
    assert put.headers["Content-Type"] == "image/jpeg"
    assert int(put.headers["Content-Length"]) == len(put.body) == opener.size
    (requested,) = server.on("/api/v2/uploads/request-presigned-url")
    assert b'"idempotency_key":"k-1"' in requested.body
    assert "topsecret" not in caplog.text


async def test_a_refused_presigned_put_rejects_the_item_without_leaking_the_url(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    from ingest.api.models import PresignedUploadResponse

    server.script(
        "/bucket/x.jpg",
        reply(
            403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        ),
    )
    target = PresignedUploadResponse(
        upload_url=server.url + "/bucket/x.jpg?X-Amz-Signature=topsecret", object_key="k"
    )
    with pytest.raises(ItemRejected, match="AccessDenied") as caught:
        await make_client().put_presigned(target, CountingOpener(10).spec())
    assert "topsecret" not in str(caught.value)
    assert "topsecret" not in repr(target)


async def test_pages_are_followed(server: ScriptedServer, make_client: MakeClient) -> None:
    sid = "550e8400-e29b-41d4-a716-446655440000"

    def page(offset: int, n: int, more: bool) -> dict[str, object]:
        return {
            "session_id": sid,
            "results": [
                {
                    "image_id": f"id{offset + i}",
                    "filename": f"f{offset + i}.jpg",
                    "status": "completed",
                    "object_key": "k",
                    "created_at": "2025-01-15T10:30:00Z",
                }
                for i in range(n)
            ],
            "total_count": 5,
            "has_more": more,
            "limit": 2,
            "offset": offset,
            "summary": {},
        }

    path = f"/api/v2/uploads/sessions/{sid}/results"
    server.script(
        path,
        reply(200, page(0, 2, True)),
        reply(200, page(2, 2, True)),
        reply(200, page(4, 1, False)),
    )
    names = [r.filename async for r in make_client().iter_session_results(sid, page_size=2)]
    assert names == [f"f{i}.jpg" for i in range(5)]
    assert [s.query["offset"] for s in server.on(path)] == ["0", "2", "4"]

    files = [
        {
            "id": f"i{i}",
            "filename": f"{i}.png",
            "title": None,
            "size_bytes": i,
            "created_at": "2025-01-15T10:30:00Z",
            "has_full_description": False,
        }
        for i in range(3)
    ]
    server.script(
        "/api/v2/user-files",
        reply(200, {"files": files[:2], "total_count": 3, "has_more": True}),
        reply(200, {"files": files[2:], "total_count": 3, "has_more": False}),
    )
    held = [f.id async for f in make_client().list_all_user_files(page_size=2)]
    assert held == ["i0", "i1", "i2"]
    assert [s.query["limit"] for s in server.on("/api/v2/user-files")] == ["2", "2"]


async def test_the_pacer_sees_every_attempt_and_each_429(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    server.script(
        STREAM, reply(429, {"detail": "slow"}, {"Retry-After": "1"}), reply(200, STREAM_OK)
    )
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def pacer(nbytes: int) -> AsyncIterator[None]:
        events.append(f"enter {nbytes > 100}")
        try:
            yield
        except RateLimited as exc:
            events.append(f"429 {exc.retry_after}")
            raise
        events.append("ok")

    client = make_client()
    client.pacer = pacer
    await client.upload_stream(FileSpec("a.txt", 200, "text/plain", open=_bytes(b"x" * 200)))
    assert events == ["enter True", "429 1.0", "enter True", "ok"]


def _bytes(data: bytes):  # type: ignore[no-untyped-def]
    async def opener() -> ByteStream:
        return BytesStream(data)

    return opener
