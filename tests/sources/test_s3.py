"""The S3 source against moto's server: order, pagination, odd keys, reading, errors."""

from __future__ import annotations

import hashlib

import pytest

from ingest.errors import ConfigError, RetryableError, SourceItemError
from ingest.sources.s3 import S3Source, _Folder
from tests.fixtures.ports import free_port
from tests.fixtures.s3 import S3Bucket, S3Server
from tests.sources.helpers import collect, plain_listing, put_many, settings

ODD_KEYS = [
    "a.jpg",
    "b.txt",
    "zz.png",
    "ünïcödé/çà va.jpg",
    "ünïcödé/日本語.png",
    "with space/a b.jpg",
    "with space/nested dir/c d.pdf",
    "photos.txt",  # sorts before "photos/": "." < "/"
    "photos/2024/x.gif",
    "photos/2024-extra.md",
    "photos0.jpg",  # sorts after "photos/": "0" > "/"
    "empty/",  # a console "folder" marker: 0 bytes
    "zero/empty.txt",
]


@pytest.fixture(scope="module")
def big_bucket(s3_server: S3Server) -> S3Bucket:
    """1,100+ keys: 1,020 in one folder (pagination inside a folder task), 40 folders of
    one key (many prefixes), and 1,005 directly at the root (pagination of discovery)."""
    bucket = S3Bucket(server=s3_server, name="sources-big-bucket")
    s3_server.client().create_bucket(Bucket=bucket.name)
    keys = [f"big/{i:05d}.jpg" for i in range(1020)]
    keys += [f"p{i:02d}/k.png" for i in range(40)]
    keys += [f"root-{i:04d}.txt" for i in range(1005)]
    put_many(bucket, keys)
    return bucket


async def test_lists_everything_in_plain_listing_order(s3_bucket: S3Bucket) -> None:
    for i, key in enumerate(ODD_KEYS):
        s3_bucket.put(key, b"" if key in ("empty/", "zero/empty.txt") else f"body {i}".encode())
    items = await collect(S3Source(s3_bucket.uri(), settings(s3_bucket.endpoint_url)))
    expected = plain_listing(s3_bucket)
    assert [i.key for i in items] == [o["Key"] for o in expected] == sorted(ODD_KEYS)
    for item, obj in zip(items, expected, strict=True):
        assert item.size == obj["Size"]
        assert item.etag == obj["ETag"].strip('"')
        assert item.bucket == s3_bucket.name
        assert item.last_modified is not None and item.last_modified.endswith("Z")
    assert {i.key: i.size for i in items}["zero/empty.txt"] == 0


async def test_pagination_and_many_prefixes_keep_the_order(big_bucket: S3Bucket) -> None:
    expected = [o["Key"] for o in plain_listing(big_bucket)]
    assert len(expected) == 2065
    for concurrency in (1, 4, 16):
        source = S3Source(
            big_bucket.uri(), settings(big_bucket.endpoint_url, list_concurrency=concurrency)
        )
        assert [i.key for i in await collect(source)] == expected


async def test_prefix_scoping(big_bucket: S3Bucket, s3_bucket: S3Bucket) -> None:
    source = S3Source(big_bucket.uri("big/"), settings(big_bucket.endpoint_url))
    assert [i.key for i in await collect(source)] == [f"big/{i:05d}.jpg" for i in range(1020)]
    source = S3Source(big_bucket.uri("p0"), settings(big_bucket.endpoint_url))
    assert [i.key for i in await collect(source)] == [f"p{i:02d}/k.png" for i in range(10)]
    empty = S3Source(big_bucket.uri("no-such-prefix/"), settings(big_bucket.endpoint_url))
    assert await collect(empty) == []
    assert await collect(S3Source(s3_bucket.uri(), settings(s3_bucket.endpoint_url))) == []


async def test_small_levels_are_explored_deeper(s3_bucket: S3Bucket) -> None:
    keys = [f"data/2024/{m:02d}/{d}.jpg" for m in range(1, 13) for d in ("a", "b")]
    keys += ["data/readme.md", "data/2024/index.md"]
    put_many(s3_bucket, keys)
    source = S3Source(s3_bucket.uri(), settings(s3_bucket.endpoint_url, list_concurrency=4))
    async with source:
        entries = [e async for e in source._discover("", 0)]
        # data/ (1 folder) and data/2024/ (1 folder) are small: their months become the
        # folders listed in parallel; the direct keys on the way keep their places.
        folders = [e.prefix for e in entries if isinstance(e, _Folder)]
        assert folders == [f"data/2024/{m:02d}/" for m in range(1, 13)]
        assert [i.key async for i in source.list()] == sorted(keys)


async def test_checksums_are_fetched_when_asked(s3_bucket: S3Bucket) -> None:
    body = b"checksummed"
    s3_bucket.put("with.jpg", body, ChecksumAlgorithm="SHA256")
    s3_bucket.put("without.jpg", b"plain")
    plain = await collect(S3Source(s3_bucket.uri(), settings(s3_bucket.endpoint_url)))
    assert [i.sha256 for i in plain] == [None, None]
    source = S3Source(s3_bucket.uri(), settings(s3_bucket.endpoint_url, fetch_checksums=True))
    by_key = {i.key: i.sha256 for i in await collect(source)}
    assert by_key == {"with.jpg": hashlib.sha256(body).hexdigest(), "without.jpg": None}


async def test_open_streams_the_planned_version_only(s3_bucket: S3Bucket) -> None:
    body = bytes(range(256)) * 2000  # 512 KB: several chunks
    s3_bucket.put("dir/photo.jpg", body)
    s3_bucket.put("gone.jpg", b"soon deleted")
    async with S3Source(s3_bucket.uri(), settings(s3_bucket.endpoint_url)) as source:
        items = {i.key: i async for i in source.list()}
        stream = await source.open(items["dir/photo.jpg"])
        assert stream.size == len(body)
        assert b"".join([c async for c in stream]) == body
        await stream.aclose()  # safe after the end

        s3_bucket.put("dir/photo.jpg", b"replaced")
        with pytest.raises(SourceItemError, match="changed since planning"):
            await source.open(items["dir/photo.jpg"])
        s3_bucket.server.client().delete_object(Bucket=s3_bucket.name, Key="gone.jpg")
        with pytest.raises(SourceItemError, match="gone"):
            await source.open(items["gone.jpg"])


async def test_endpoint_comes_from_aws_endpoint_url(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_bucket.put("a.jpg", b"x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_bucket.endpoint_url)
    assert [i.key for i in await collect(S3Source(s3_bucket.uri(), settings()))] == ["a.jpg"]


async def test_stopping_early_leaves_no_listing_task(big_bucket: S3Bucket) -> None:
    expected = [o["Key"] for o in plain_listing(big_bucket)]
    source = S3Source(big_bucket.uri(), settings(big_bucket.endpoint_url, list_concurrency=2))
    async with source:
        listing = source.list()
        assert [(await anext(listing)).key for _ in range(500)] == expected[:500]
        assert source._tasks  # folders after big/ were being listed ahead
        await listing.aclose()
        assert not source._tasks


async def test_bad_uris_and_buckets_are_config_errors(s3_server: S3Server) -> None:
    with pytest.raises(ConfigError, match="names no bucket"):
        S3Source("s3:///prefix", settings(s3_server.endpoint_url))
    with pytest.raises(ConfigError, match="does not exist"):
        await collect(S3Source("s3://no-such-bucket-here/", settings(s3_server.endpoint_url)))


async def test_unreachable_endpoint_is_retryable(s3_bucket: S3Bucket) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RetryableError, match="unreachable"):
        await collect(S3Source(s3_bucket.uri(), settings(dead, max_attempts=1)))
