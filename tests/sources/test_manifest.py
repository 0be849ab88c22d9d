"""Manifest sources (CSV, JSON Lines, S3 Inventory) against moto, broken ones included."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from ingest.errors import ConfigError, SourceItemError
from ingest.items import PlainBatch, item_of
from ingest.sources import manifest_kind, open_source
from ingest.sources.manifest import ManifestSource
from ingest.sources.s3 import S3Source
from tests.fixtures.s3 import S3Bucket
from tests.sources.helpers import collect, settings


def etag_of(bucket: S3Bucket, key: str) -> str:
    head = bucket.server.client().head_object(Bucket=bucket.name, Key=key)
    return str(head["ETag"]).strip('"')


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("s3://b/lists/batch.csv", "csv"),
        ("/tmp/x/MANIFEST.CSV.GZ", "csv"),
        ("file:///tmp/items.jsonl", "jsonl"),
        ("s3://b/items.ndjson.gz", "jsonl"),
        ("s3://inv/src/cfg/2024-05-01T00-00Z/manifest.json", "inventory"),
        ("s3://b/photos/", None),
        ("s3://b/exports.csv/", None),  # a trailing "/" lists the prefix
        ("/data/photos", None),
    ],
)
def test_manifest_kind_by_name(uri: str, kind: str | None) -> None:
    assert manifest_kind(uri) == kind


async def test_csv_without_header_fills_missing_fields_by_head(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    keys = [f"photos/{i:03d} ünï.jpg" for i in range(60)]
    for i, key in enumerate(keys):
        s3_bucket.put(key, b"x" * i)
    etag = etag_of(s3_bucket, keys[1])
    rows = [f"{s3_bucket.name},{k.replace(' ', '%20')}" for k in keys]
    rows[1] = f"{s3_bucket.name},{keys[1].replace(' ', '+')},1,{etag},,A title,red;blue"
    manifest = tmp_path / "batch.csv"
    manifest.write_text("\n".join(rows) + "\n")
    source = open_source(str(manifest), settings(s3_bucket.endpoint_url, head_concurrency=4))
    assert isinstance(source, ManifestSource)
    items = await collect(source)
    assert [i.key for i in items] == keys  # manifest order, though HEADs finish in any order
    assert [i.size for i in items] == list(range(60))
    assert items[1].title == "A title" and items[1].tags == ("red", "blue")
    assert all(i.etag and i.bucket == s3_bucket.name for i in items)
    assert items[0].last_modified is not None  # from the HEAD


async def test_csv_with_header_in_s3_gzipped_reads_objects(s3_bucket: S3Bucket) -> None:
    body = b"\x89PNG fake"
    s3_bucket.put("a b/c+d.png", body)
    sha = hashlib.sha256(body).hexdigest()
    text = f'key,Bucket,title,sha256\n"a%20b/c%2Bd.png",{s3_bucket.name},"Multi\nline",{sha}\n'
    s3_bucket.put("lists/m.csv.gz", gzip.compress(text.encode()))
    source = open_source(s3_bucket.uri("lists/m.csv.gz"), settings(s3_bucket.endpoint_url))
    async with source:
        [item] = [i async for i in source.list()]
        assert (item.key, item.size, item.title, item.sha256) == (
            "a b/c+d.png",
            len(body),
            "Multi\nline",
            sha,
        )
        stream = await source.open(item)
        assert b"".join([c async for c in stream]) == body
        s3_bucket.put("a b/c+d.png", b"changed")
        with pytest.raises(SourceItemError, match="changed since planning"):
            await source.open(item)


async def test_jsonl_keys_are_raw(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    s3_bucket.put("raw 100%+ key.jpg", b"abc")
    s3_bucket.put("b.pdf", b"pdf!")
    lines = [
        {"bucket": s3_bucket.name, "key": "raw 100%+ key.jpg", "tags": ["x", "y"]},
        {},  # not a valid row
        {"bucket": s3_bucket.name, "key": "b.pdf", "size": 4, "etag": etag_of(s3_bucket, "b.pdf")},
    ]
    manifest = tmp_path / "items.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    with pytest.raises(ConfigError, match=rf"{manifest} line 2: no bucket; .*MANIFEST_ERRORS=skip"):
        await collect(open_source(str(manifest), settings(s3_bucket.endpoint_url)))
    source = open_source(str(manifest), settings(s3_bucket.endpoint_url, manifest_errors="skip"))
    items = await collect(source)
    assert [(i.key, i.size, i.tags) for i in items] == [
        ("raw 100%+ key.jpg", 3, ("x", "y")),
        ("b.pdf", 4, ()),
    ]
    assert source.problems.count == 1


BROKEN_CSV = [
    ("{b},ok.jpg", None),
    ("{b},bad-size.jpg,lots", "size 'lots' is not a whole number of bytes"),
    ("{b}", "no key"),
    (",nobucket.jpg", "no bucket"),
    ("{b},missing.jpg", "is gone"),
    ("{b},k.jpg,1,e,nothex", "not a SHA-256"),
    ("{b},k.jpg,1,e,,t,tags,extra", "8 columns, at most 7 expected"),
    ('{b},ok.jpg,,,,unclosed "quote', None),  # a quote inside a cell: fine for CSV
    ('{b},"open quote', "a quoted cell is never closed"),
]


async def test_broken_csv_lines_fail_or_are_skipped_and_counted(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    s3_bucket.put("ok.jpg", b"ok")
    manifest = tmp_path / "broken.csv"
    manifest.write_bytes(f"{s3_bucket.name},ok.jpg\n".encode() + b"\xff\xfe,bad\n")
    with pytest.raises(ConfigError, match=rf"{manifest} line 2: not UTF-8"):
        await collect(open_source(str(manifest), settings(s3_bucket.endpoint_url)))

    manifest.write_text("\n".join(line.format(b=s3_bucket.name) for line, _ in BROKEN_CSV))
    source = open_source(str(manifest), settings(s3_bucket.endpoint_url, manifest_errors="skip"))
    items = await collect(source)
    assert [i.key for i in items] == ["ok.jpg", "ok.jpg"]
    expected = [(n, why) for n, (_, why) in enumerate(BROKEN_CSV, 1) if why]
    # (a missing object is found by its HEAD, which ends after later lines were read)
    got = sorted((p.line or 0, p.reason) for p in source.problems.examples)
    assert [n for n, _ in got] == [n for n, _ in expected]
    for (_, reason), (_, why) in zip(got, expected, strict=True):
        assert why in reason
    assert source.problems.count == len(expected)
    assert all(p.where == str(manifest) for p in source.problems.examples)


def write_inventory(bucket: S3Bucket, rows: list[list[str]], fmt: str = "CSV") -> str:
    schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"
    data_keys = []
    for n, chunk in enumerate((rows[:2], rows[2:])):
        key = f"inv/src/cfg/data/part-{n}.csv.gz"
        text = "".join(",".join(f'"{c}"' for c in row) + "\n" for row in chunk)
        bucket.put(key, gzip.compress(text.encode()))
        data_keys.append({"key": key, "size": 1, "MD5checksum": "x"})
    manifest = {
        "sourceBucket": bucket.name,
        "destinationBucket": f"arn:aws:s3:::{bucket.name}",
        "fileFormat": fmt,
        "fileSchema": schema,
        "files": data_keys,
    }
    bucket.put("inv/src/cfg/2024-05-01T00-00Z/manifest.json", json.dumps(manifest).encode())
    return bucket.uri("inv/src/cfg/2024-05-01T00-00Z/manifest.json")


async def test_s3_inventory(s3_bucket: S3Bucket) -> None:
    b = s3_bucket.name
    t = "2024-05-01T10:00:00.000Z"
    rows = [
        [b, "photos/a%20b.jpg", "", "true", "false", "10", t, "e1"],
        [b, "photos/old.jpg", "v1", "false", "false", "5", t, "e2"],  # non-current version
        [b, "photos/deleted.jpg", "v2", "true", "true", "", "", ""],  # delete marker
        [b, "photos/%C3%BC.png", "", "true", "false", "7", t, "e3"],
    ]
    uri = write_inventory(s3_bucket, rows)
    items = await collect(open_source(uri, settings(s3_bucket.endpoint_url)))
    assert [(i.key, i.size, i.etag, i.last_modified) for i in items] == [
        ("photos/a b.jpg", 10, "e1", "2024-05-01T10:00:00Z"),
        ("photos/ü.png", 7, "e3", "2024-05-01T10:00:00Z"),
    ]
    rows.append([b, "short"])
    uri = write_inventory(s3_bucket, rows)
    with pytest.raises(
        ConfigError, match=r"part-1.csv.gz line 3: 2 columns where fileSchema has 8"
    ):
        await collect(open_source(uri, settings(s3_bucket.endpoint_url)))


async def test_broken_inventories_and_missing_manifests(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    uri = write_inventory(s3_bucket, [], fmt="Parquet")
    with pytest.raises(ConfigError, match="only CSV inventories"):
        await collect(open_source(uri, settings(s3_bucket.endpoint_url)))
    s3_bucket.put("x/manifest.json", b"{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        await collect(
            open_source(s3_bucket.uri("x/manifest.json"), settings(s3_bucket.endpoint_url))
        )
    with pytest.raises(ConfigError, match=r"cannot read manifest .*gone"):
        await collect(open_source(s3_bucket.uri("nope.csv"), settings(s3_bucket.endpoint_url)))
    with pytest.raises(ConfigError, match="does not exist or is not a file"):
        open_source(str(tmp_path / "nope.jsonl"), settings())
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ConfigError, match="not valid gzip"):
        await collect(open_source(str(tmp_path / "bad.csv.gz"), settings()))
    (tmp_path / "h.csv").write_text("bucket,key,colour\n")
    with pytest.raises(ConfigError, match="unknown columns"):
        await collect(open_source(str(tmp_path / "h.csv"), settings()))


async def test_time_filter_makes_heads_fill_last_modified(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    s3_bucket.put("a.jpg", b"a")
    etag = etag_of(s3_bucket, "a.jpg")
    (tmp_path / "m.csv").write_text(f"{s3_bucket.name},a.jpg,1,{etag}\n")
    plain = await collect(open_source(str(tmp_path / "m.csv"), settings(s3_bucket.endpoint_url)))
    assert plain[0].last_modified is None  # complete row: no HEAD
    timed = open_source(str(tmp_path / "m.csv"), settings(s3_bucket.endpoint_url), need_times=True)
    [item] = await collect(timed)
    listed = await collect(S3Source(s3_bucket.uri(), settings(s3_bucket.endpoint_url)))
    assert item.last_modified == listed[0].last_modified


async def test_batches_keep_complete_plain_rows_as_tuples_in_manifest_order(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    """The planner's read of a manifest: a complete plain row comes as a PlainRow (no Item
    made), a row needing a HEAD as an Item, all in manifest order and the same objects as
    list() gives; quotes, escapes, URL-encoded keys and bad lines as ever."""
    for key in ("head one.jpg", "no-etag.jpg"):
        s3_bucket.put(key, b"xyz")
    b = s3_bucket.name
    lines = [
        f"{b},plain.jpg,3,e1",
        f'{b},"quoted, comma.jpg",4,"e2"',
        f"{b},head%20one.jpg",  # no size or ETag: a HEAD
        f"{b},back\\slash\ttab.jpg,5,e3",  # a backslash and a tab in the key, kept
        f"{b},url%2Bkey+x.jpg,6,e4",  # URL-encoded: "url+key x.jpg"
        "\udcff,bad.jpg,1,e",  # not UTF-8: skipped and counted
        f"{b},no-etag.jpg,3,",  # a size but no ETag: a HEAD
        f"{b},after.jpg,8,e5",  # behind the HEADs, still in its place
        f'{b},"multi\nline.jpg",9,e6',  # a quoted cell over two lines
    ]
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    options = settings(
        s3_bucket.endpoint_url, manifest_errors="skip", manifest_keys="url", head_concurrency=1
    )
    async with open_source(str(manifest), options) as source:
        rows = [row async for batch in source.batches() for row in batch]
        assert source.problems.count == 1
    etag = etag_of(s3_bucket, "no-etag.jpg")
    assert [r if isinstance(r, tuple) else (r.bucket, r.key, r.size, r.etag) for r in rows] == [
        (b, "plain.jpg", 3, "e1"),
        (b, "quoted, comma.jpg", 4, "e2"),
        (b, "head one.jpg", 3, etag),
        (b, "back\\slash\ttab.jpg", 5, "e3"),
        (b, "url+key x.jpg", 6, "e4"),
        (b, "no-etag.jpg", 3, etag),
        (b, "after.jpg", 8, "e5"),
        (b, "multi\nline.jpg", 9, "e6"),
    ]
    assert [isinstance(r, tuple) for r in rows] == [
        True,
        True,
        False,
        True,
        True,
        False,
        True,
        True,
    ]
    assert [item_of(r) for r in rows] == await collect(open_source(str(manifest), options))


async def test_plain_chunks_come_whole_and_wait_behind_a_head(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    """Chunks of common plain lines come as PlainBatches (each row with its text), in
    manifest order: also the ones read while a HEAD before them is still running, and
    the same objects as list(). With a time filter every row needs a HEAD: none come."""
    s3_bucket.put("head.jpg", b"xyz")
    b = s3_bucket.name
    lines = [f"{b},k{i:04d}.jpg,{i},e{i}" for i in range(300)]
    # no size or ETag: a HEAD, the second batch's last line (still running when the next
    # batch, a PlainBatch, comes)
    lines.insert(127, f"{b},head.jpg")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    options = settings(s3_bucket.endpoint_url, head_concurrency=1)
    async with open_source(str(tmp_path / "m.csv"), options) as source:
        batches = [batch async for batch in source.batches()]
    rows = [row for batch in batches for row in batch]
    etag = etag_of(s3_bucket, "head.jpg")
    want = [(b, f"k{i:04d}.jpg", i, f"e{i}") for i in range(300)]
    want.insert(127, (b, "head.jpg", 3, etag))
    assert [r if isinstance(r, tuple) else (r.bucket, r.key, r.size, r.etag) for r in rows] == want
    whole = [batch for batch in batches if isinstance(batch, PlainBatch)]
    assert len(whole) == 2  # not the first (a header?) nor the one queued behind the HEAD
    for batch in whole:
        assert batch.tabbed == [f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t" for r in batch]
    assert [item_of(r) for r in rows] == await collect(
        open_source(str(tmp_path / "m.csv"), options)
    )
    (tmp_path / "t.csv").write_text("\n".join([f"{b},head.jpg,3,{etag}"] * 70) + "\n")
    timed = open_source(str(tmp_path / "t.csv"), options, need_times=True)
    async with timed as source:
        batches = [batch async for batch in source.batches()]
    assert not [batch for batch in batches if isinstance(batch, PlainBatch)]
    assert all(item_of(r).last_modified for batch in batches for r in batch)
