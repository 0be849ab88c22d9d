"""The StateStore contract, run on the folder store and on S3 (moto) alike."""

from __future__ import annotations

import hashlib

import pytest

from ingest.errors import ConfigError, StateConflict
from ingest.state import RunLayout, StateStore


async def test_put_then_get_returns_bytes_and_etag(store: StateStore) -> None:
    etag = await store.put("runs/r1/run.json", b'{"a": 1}')
    blob = await store.get("runs/r1/run.json")
    assert blob is not None
    assert blob.data == b'{"a": 1}'
    assert blob.etag == etag == hashlib.md5(b'{"a": 1}').hexdigest()


async def test_get_of_a_missing_object_is_none(store: StateStore) -> None:
    assert await store.get("runs/nope/run.json") is None


async def test_create_refuses_an_existing_object_and_keeps_it(store: StateStore) -> None:
    await store.create("runs/r1/run.json", b"first")
    with pytest.raises(StateConflict, match="exists"):
        await store.create("runs/r1/run.json", b"second")
    blob = await store.get("runs/r1/run.json")
    assert blob is not None and blob.data == b"first"


async def test_replace_needs_the_current_etag(store: StateStore) -> None:
    etag = await store.create("c.json", b"v1")
    etag2 = await store.replace("c.json", b"v2", etag)
    with pytest.raises(StateConflict, match="changed since"):
        await store.replace("c.json", b"v3", etag)  # a zombie holding the old ETag
    blob = await store.get("c.json")
    assert blob is not None and (blob.data, blob.etag) == (b"v2", etag2)


async def test_replace_of_a_missing_object_conflicts(store: StateStore) -> None:
    with pytest.raises(StateConflict):
        await store.replace("gone.json", b"x", hashlib.md5(b"x").hexdigest())
    assert await store.get("gone.json") is None


async def test_list_is_sorted_and_limited_to_the_prefix(store: StateStore) -> None:
    layout = RunLayout("r1")
    for i in (2, 0, 1):
        await store.put(layout.shard(i), b"s")
    await store.put(layout.run_json, b"{}")
    await store.put("runs/r10/run.json", b"{}")
    assert [p async for p in store.list("runs/r1/shards/")] == [layout.shard(i) for i in range(3)]
    assert [p async for p in store.list("runs/r1/")] == [
        layout.run_json,
        *(layout.shard(i) for i in range(3)),
    ]
    # A prefix is a string prefix, as on S3, not only a folder.
    assert [p async for p in store.list("runs/r1")] == [
        layout.run_json,
        *(layout.shard(i) for i in range(3)),
        "runs/r10/run.json",
    ]
    assert [p async for p in store.list("nothing/")] == []


async def test_delete_removes_and_tolerates_absence(store: StateStore) -> None:
    await store.put("x/y", b"1")
    await store.delete("x/y")
    await store.delete("x/y")
    assert await store.get("x/y") is None


@pytest.mark.parametrize("path", ["", "/abs", "a//b", "a/../b", "../up", "a/.hidden", "a/"])
async def test_unclean_paths_are_refused(store: StateStore, path: str) -> None:
    with pytest.raises(ConfigError, match="clean relative path"):
        await store.put(path, b"x")
