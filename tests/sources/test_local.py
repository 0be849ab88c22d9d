"""The local folder source: S3-like key order, change detection, odd files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.errors import ConfigError, SourceItemError
from ingest.items import Item
from ingest.sources import open_source
from ingest.sources.local import LocalSource
from tests.sources.helpers import collect, settings

FILES = {
    "a.jpg": b"a",
    "a/x.png": b"ax",
    "a-b.gif": b"",
    "a0.txt": b"a0",
    "deep/er/still/ünï côdé.md": "é".encode(),
    "with space/f g.pdf": b"pdf",
}


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for key, body in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


async def test_lists_recursively_in_s3_key_order(tmp_path: Path) -> None:
    make_tree(tmp_path, FILES)
    (tmp_path / "empty-dir").mkdir()
    items = await collect(LocalSource(str(tmp_path)))
    assert [i.key for i in items] == sorted(FILES)  # "a-b.gif" < "a.jpg" < "a/x.png" < "a0.txt"
    by_key = {i.key: i for i in items}
    assert by_key["a-b.gif"].size == 0
    assert by_key["deep/er/still/ünï côdé.md"].size == 2
    assert all(i.etag and i.last_modified and i.last_modified.endswith("Z") for i in items)
    # file:// URIs (percent-escaped) name the same folder and give the same items
    uri = tmp_path.as_uri()
    assert await collect(open_source(uri, settings())) == items


async def test_open_reads_and_detects_changes(tmp_path: Path) -> None:
    body = os.urandom(600_000)  # several chunks
    make_tree(tmp_path, {"big.jpg": body, "gone.jpg": b"x"})
    source = LocalSource(f"file://{tmp_path}")
    items = {i.key: i for i in await collect(source)}
    stream = await source.open(items["big.jpg"])
    assert stream.size == len(body)
    assert b"".join([c async for c in stream]) == body

    (tmp_path / "big.jpg").write_bytes(b"changed")
    with pytest.raises(SourceItemError, match="changed since planning"):
        await source.open(items["big.jpg"])
    (tmp_path / "gone.jpg").unlink()
    with pytest.raises(SourceItemError, match="gone"):
        await source.open(items["gone.jpg"])
    with pytest.raises(SourceItemError, match="leaves the source folder"):
        await source.open(Item(key="../outside.jpg", size=1))


async def test_dangling_links_are_problems_and_dir_links_are_not_followed(tmp_path: Path) -> None:
    make_tree(tmp_path, {"real/a.jpg": b"a"})
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "loop").symlink_to(tmp_path)  # a directory link: not followed
    (tmp_path / "link.jpg").symlink_to(tmp_path / "real/a.jpg")  # a file link: followed
    source = LocalSource(str(tmp_path))
    assert [i.key for i in await collect(source)] == ["link.jpg", "real/a.jpg"]
    assert source.problems.count == 1
    assert str(source.problems.examples[0]).startswith(str(tmp_path / "broken.jpg"))


def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist or is not a directory"):
        LocalSource(str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="with a host"):
        LocalSource("file://host/path")
