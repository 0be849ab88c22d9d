"""Transfer records: closed whatever happens, counted once, results handed to the sink."""

from __future__ import annotations

import pytest

from ingest.items import FailureCode, Item, ItemResult, Outcome
from ingest.streams import BytesStream
from ingest.worker.accounting import Accounting
from tests.worker.fakeclock import FakeClock

TOO_LARGE = FailureCode.TOO_LARGE


def item(n: int, size: int = 100) -> Item:
    return Item(key=f"photos/{n}.jpg", size=size)


def test_a_finished_transfer_is_counted_and_emitted_once() -> None:
    got: list[ItemResult] = []
    acct = Accounting(3, 600, sink=got.append, clock=FakeClock())
    with acct.transfer(0, item(0)) as t:
        assert acct.snapshot().in_flight == 1
        t.attempts = 2
        t.finish(Outcome.UPLOADED, image_id="img")
    acct.record(1, item(1, 200), Outcome.SKIPPED_UNSUPPORTED)
    acct.close(t)  # closing twice does nothing
    snap = acct.snapshot()
    assert (snap.objects, snap.bytes, snap.in_flight) == (2, 300, 0)
    assert snap.by_outcome == {"uploaded": 1, "skipped_unsupported": 1}
    assert snap.bytes_by_outcome == {"uploaded": 100, "skipped_unsupported": 200}
    assert got[0] == ItemResult(0, "photos/0.jpg", 100, Outcome.UPLOADED, "img", attempts=2)
    assert [r.ordinal for r in got] == [0, 1]


def test_a_transfer_left_by_an_exception_is_closed_without_an_outcome() -> None:
    got: list[ItemResult] = []
    acct = Accounting(sink=got.append)
    with pytest.raises(RuntimeError), acct.transfer(5, item(5)):
        raise RuntimeError("fatal: 401")
    assert got == []
    snap = acct.snapshot()
    assert (snap.objects, snap.in_flight, acct.abandoned) == (0, 0, 1)


def test_last_finish_wins_and_failed_fields_are_kept() -> None:
    got: list[ItemResult] = []
    acct = Accounting(sink=got.append)
    with acct.transfer(0, item(0)) as t:
        t.finish(Outcome.UPLOADED)
        t.finish(Outcome.FAILED, reason="too big", http_status=413, attempts=1, code=TOO_LARGE)
    assert got == [
        ItemResult(0, "photos/0.jpg", 100, Outcome.FAILED, None, "too big", 413, 1, "too_large")
    ]


def test_a_failure_without_a_code_is_refused() -> None:
    acct = Accounting()
    with acct.transfer(0, item(0)) as t, pytest.raises(ValueError, match="FailureCode"):
        t.finish(Outcome.FAILED, reason="too big", http_status=413)


def test_one_ordinal_cannot_be_in_flight_twice() -> None:
    acct = Accounting()
    acct.open(1, item(1))
    with pytest.raises(ValueError, match="already in flight"):
        acct.open(1, item(1))


def test_a_result_needs_an_outcome() -> None:
    acct = Accounting()
    t = acct.open(0, item(0))
    with pytest.raises(ValueError, match="no outcome"):
        t.result()


def test_resumed_items_count_toward_progress() -> None:
    acct = Accounting(10, 1000)
    acct.resumed(4, 400)
    acct.record(4, item(4), Outcome.UPLOADED)
    snap = acct.snapshot()
    assert (snap.objects, snap.bytes, snap.resumed_objects) == (5, 500, 4)


async def test_counting_stream_reports_bytes_in_flight() -> None:
    acct = Accounting()
    with acct.transfer(0, item(0, 10_000)) as t:
        stream = acct.counting(BytesStream(b"x" * 10_000, chunk_size=4096), t)
        assert stream.size == 10_000
        seen = []
        async for chunk in stream:
            seen.append(len(chunk))
            assert acct.snapshot().bytes_in_flight == sum(seen)
        await stream.aclose()
        t.finish(Outcome.UPLOADED)
    assert seen == [4096, 4096, 1808]
