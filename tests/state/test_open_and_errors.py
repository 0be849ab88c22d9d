"""Opening a store: URIs, the conditional-write probe, and errors translated at the edge."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ingest.errors import ConfigError, RetryableError
from ingest.settings import Settings, load_settings
from ingest.state import open_state
from tests.fixtures.ports import free_port
from tests.fixtures.s3 import S3Bucket


def _s3_settings(endpoint_url: str, verify: bool = True) -> Settings:
    return load_settings(
        store={
            "endpoint_url": endpoint_url,
            "region": "us-east-1",
            "verify_conditional_writes": verify,
        }
    )


@pytest.fixture
async def forgetful_s3(s3_bucket: S3Bucket) -> AsyncIterator[str]:
    """A real HTTP proxy in front of moto that drops If-None-Match and If-Match, like
    `rclone serve s3` does: the kind of server the probe must refuse."""
    session = aiohttp.ClientSession(auto_decompress=False)
    dropped = {"host", "if-none-match", "if-match", "content-length", "transfer-encoding"}

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        async with session.request(
            request.method,
            s3_bucket.endpoint_url + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as resp:
            body = await resp.read()
            keep = {
                k: v
                for k, v in resp.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
            return web.Response(status=resp.status, headers=keep, body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await session.close()


async def test_probe_refuses_a_server_that_ignores_if_none_match(
    s3_bucket: S3Bucket, forgetful_s3: str
) -> None:
    with pytest.raises(ConfigError, match=r"ignores If-None-Match.*honours conditional writes"):
        async with open_state(s3_bucket.uri("st"), _s3_settings(forgetful_s3)):
            pass
    # The probe cleaned up after itself.
    listed = s3_bucket.server.client().list_objects_v2(Bucket=s3_bucket.name)
    assert listed.get("KeyCount", 0) == 0


async def test_probe_can_be_switched_off(s3_bucket: S3Bucket, forgetful_s3: str) -> None:
    async with open_state(s3_bucket.uri("st"), _s3_settings(forgetful_s3, False)) as store:
        await store.put("a", b"1")
        blob = await store.get("a")
    assert blob is not None and blob.data == b"1"


async def test_probe_passes_on_moto_and_leaves_nothing(s3_bucket: S3Bucket) -> None:
    async with open_state(s3_bucket.uri(), _s3_settings(s3_bucket.endpoint_url)) as store:
        assert [p async for p in store.list("")] == []


async def test_missing_bucket_is_a_config_error_naming_the_fix(s3_bucket: S3Bucket) -> None:
    settings = _s3_settings(s3_bucket.endpoint_url)
    with pytest.raises(ConfigError, match="bucket no-such-bucket does not exist; create it"):
        async with open_state("s3://no-such-bucket/x", settings):
            pass


async def test_unreachable_endpoint_is_retryable() -> None:
    settings = _s3_settings(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RetryableError, match="state store s3://b/x"):
        async with open_state("s3://b/x", settings):
            pass


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (None, "no state store given"),
        ("", "no state store given"),
        ("gs://bucket/x", "unknown scheme"),
        ("s3:///x", "names no bucket"),
        ("file://otherhost/x", "not a local path"),
    ],
)
def test_bad_uris_are_config_errors(uri: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_state(uri, load_settings())


async def test_plain_path_and_file_uri_name_the_same_folder(tmp_path: Path) -> None:
    async with open_state(str(tmp_path / "st"), load_settings()) as store:
        await store.put("runs/r/run.json", b"{}")
    async with open_state(f"file://{tmp_path}/st", load_settings()) as store:
        assert [p async for p in store.list("runs/")] == ["runs/r/run.json"]


async def test_a_crashed_writers_stale_lock_is_broken(tmp_path: Path) -> None:
    async with open_state(f"file://{tmp_path}", load_settings()) as store:
        etag = await store.create("runs/r/checkpoints/00000.json", b"v1")
        lock = tmp_path / "runs/r/checkpoints/.00000.json.lock"
        lock.write_text("12345@dead-pod\n")
        an_hour_ago = time.time() - 3600
        os.utime(lock, (an_hour_ago, an_hour_ago))
        await store.replace("runs/r/checkpoints/00000.json", b"v2", etag)
        assert not lock.exists()
        assert [p async for p in store.list("runs/")] == ["runs/r/checkpoints/00000.json"]
