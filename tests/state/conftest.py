"""Both state stores behind one fixture, so every contract test runs on each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ingest.settings import load_settings
from ingest.state import StateStore, open_state
from tests.fixtures.s3 import S3Bucket


@pytest.fixture
async def folder_store(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with open_state(f"file://{tmp_path}/state", load_settings()) as store:
        yield store


@pytest.fixture
async def s3_store(s3_bucket: S3Bucket) -> AsyncIterator[StateStore]:
    settings = load_settings(store={"endpoint_url": s3_bucket.endpoint_url, "region": "us-east-1"})
    async with open_state(s3_bucket.uri("state/prefix"), settings) as store:
        yield store


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest) -> StateStore:
    """Each state store, opened (the conditional-write probe has passed)."""
    result: StateStore = request.getfixturevalue(f"{request.param}_store")
    return result
