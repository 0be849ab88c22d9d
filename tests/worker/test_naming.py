"""What is sent with each file: safe names, titles, tags, idempotency keys, routes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.items import Item, is_supported
from ingest.settings import STREAM_MAX_BYTES, WorkerSettings
from ingest.worker.naming import (
    FILENAME_MAX_BYTES,
    Route,
    idempotency_key,
    make_title,
    merge_tags,
    route_for,
    safe_filename,
    upload_fields,
)

KEY_RE = re.compile(r"^[a-zA-Z0-9_\-\.]{1,128}$")


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("photos/2024/cat.jpg", "cat.jpg"),
        ("a b/été à la plage.JPG", "été à la plage.JPG"),
        ("dir/we\x00ird\x1b[31m.png", "weird[31m.png"),
        ('dir/say "cheese".png', "say _cheese_.png"),
        ("dir\\win\\path.gif", "path.gif"),
        ("folder/", "folder"),
        ("/", "file"),
        ("..", "file"),
        ("e\u0301.txt", "\u00e9.txt"),  # NFC
        ("zero\u200bwidth.md", "zerowidth.md"),
    ],
)
def test_safe_filenames(key: str, name: str) -> None:
    assert safe_filename(key) == name


def test_long_names_are_cut_keeping_the_extension() -> None:
    key = "deep/" + "ü" * 300 + ".jpeg"
    name = safe_filename(key)
    assert name.endswith(".jpeg")
    assert len(name.encode()) <= FILENAME_MAX_BYTES
    assert name.startswith("ü")
    assert is_supported(name)
    weird = safe_filename("x" * 300 + "." + "y" * 40)  # no real extension to keep
    assert len(weird.encode()) <= FILENAME_MAX_BYTES


@given(st.text(min_size=0, max_size=400))
def test_any_key_gives_a_safe_nonempty_name(key: str) -> None:
    name = safe_filename(key)
    assert name
    assert len(name.encode()) <= FILENAME_MAX_BYTES
    assert not any(ch in name for ch in '/\\"\x00\r\n')


def test_titles_come_from_the_manifest_or_the_filename_and_fit() -> None:
    assert make_title(Item(key="a/b.jpg", size=1), "b.jpg") == "b.jpg"
    assert make_title(Item(key="a/b.jpg", size=1, title="Site\nvisit"), "b.jpg") == "Sitevisit"
    long = make_title(Item(key="k.jpg", size=1, title="t" * 400), "k.jpg")
    assert len(long) == 255
    assert make_title(Item(key="k.jpg", size=1, title="  "), "k.jpg") == "k.jpg"


def test_tags_are_merged_deduplicated_and_comma_free() -> None:
    tags = merge_tags(("site", "a,b", " site ", ""), ["run-7", "site", "x  y"])
    assert tags == ("site", "a b", "run-7", "x y")
    assert merge_tags((), []) == ()


def test_idempotency_keys_are_deterministic_valid_and_version_aware() -> None:
    item = Item(key="ü/ photo with spaces.jpg" + "x" * 400, size=5, etag="e1", bucket="b")
    k1 = idempotency_key("run-1", item)
    assert KEY_RE.match(k1)
    assert k1 == idempotency_key("run-1", item)
    assert k1.startswith("ai-")
    others = {
        idempotency_key("run-2", item),
        idempotency_key("run-1", Item(key=item.key, size=5, etag="e2", bucket="b")),
        idempotency_key("run-1", Item(key=item.key, size=5, etag="e1", bucket="c")),
        idempotency_key("run-1", Item(key=item.key, size=5, etag="e1", bucket="b", version_id="v")),
    }
    assert k1 not in others
    assert len(others) == 4


def test_routes_by_format_size_and_title() -> None:
    s = WorkerSettings(small_file_max=1024 * 1024)
    assert route_for(Item(key="a.exe", size=10), s) is Route.UNSUPPORTED
    assert route_for(Item(key="a.JPG", size=0), s) is Route.BATCH
    assert route_for(Item(key="a.jpg", size=1024 * 1024), s) is Route.BATCH
    assert route_for(Item(key="a.jpg", size=1024 * 1024 + 1), s) is Route.STREAM
    assert route_for(Item(key="a.jpg", size=10, title="Mine"), s) is Route.STREAM
    assert route_for(Item(key="a.pdf", size=STREAM_MAX_BYTES), s) is Route.STREAM
    assert route_for(Item(key="a.pdf", size=STREAM_MAX_BYTES + 1), s) is Route.PRESIGNED
    tight = WorkerSettings(small_file_max=4096, batch_max_bytes=1000)
    assert route_for(Item(key="a.png", size=2000), tight) is Route.STREAM


def test_upload_fields_gather_everything() -> None:
    s = WorkerSettings(tags=["import"])
    item = Item(key="in/Ünï code.PNG", size=10, etag="e", tags=("x",))
    f = upload_fields(item, s, "ns")
    assert f.route is Route.BATCH
    assert (f.filename, f.title, f.content_type) == ("Ünï code.PNG", "Ünï code.PNG", "image/png")
    assert f.tags == ("x", "import")
    assert f.batch_key == "x,import"
    assert f.idempotency_key == idempotency_key("ns", item)
