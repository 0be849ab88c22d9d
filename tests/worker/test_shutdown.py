"""Stopping the pipeline while its queues are full: no stage may hang on the way out.

The stages used to send their end markers in ``finally``: on a cancel (SIGTERM) the
uploaders were cancelled too, the batcher's inbox was full, and the deduplicator's put
hung for stop()'s whole 10 s grace (seen in the SIGTERM kill test: a 143 exit 10 s late).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from ingest.items import Item
from tests.worker.fakes import FakeApi
from tests.worker.test_pipeline import build, jpg

pytestmark = pytest.mark.timeout(30)


class StuckApi(FakeApi):
    """Uploads never answer (a slow API, frozen in time)."""

    def __init__(self) -> None:
        super().__init__()
        self.uploading = 0
        self.all_stuck = asyncio.Event()

    async def upload_stream_batch(self, files: Sequence[Any], **kw: Any) -> Any:
        self.uploading += 1
        if self.uploading == 2:  # both uploaders (concurrency 2)
            self.all_stuck.set()
        await asyncio.Event().wait()


def _setup() -> tuple[Any, StuckApi]:
    objects = {f"p/{n:03d}.jpg": jpg(n) for n in range(120)}
    items = [Item(key=k, size=len(v)) for k, v in objects.items()]
    api = StuckApi()
    pipe, _, _, _ = build(objects, items, api=api, concurrency=2, queue_size=4)
    return pipe, api


async def _blocked(pipe: Any, api: StuckApi) -> None:
    """Until every uploader hangs on the API and the batcher's inbox is full."""
    await api.all_stuck.wait()
    for _ in range(50):  # the reader fills the inbox in a few loop turns, then blocks
        await asyncio.sleep(0)
    assert pipe.batcher._inbox.full()


async def test_a_cancel_with_full_queues_stops_at_once(caplog: pytest.LogCaptureFixture) -> None:
    """No stage may need stop()'s grace: a hung one is named in its warning when the grace
    runs out (the test's timeout is far above the grace, so a hang fails here, not there)."""
    pipe, api = _setup()
    task = asyncio.ensure_future(pipe.run())
    await _blocked(pipe, api)
    task.cancel()
    with caplog.at_level(logging.WARNING, logger="ingest.worker.pipeline"):
        await asyncio.wait([task])
    assert task.cancelled()
    assert all(t.done() for t in pipe.tasks)
    assert "still running" not in caplog.text, "a stage hung on its way out"
