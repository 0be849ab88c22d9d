"""Results parts written before rows carried a failure code still report and retry right.

Such a part holds ``failed`` rows with a reason text and an HTTP status only; reading it
gives each row a code (``state/old_results.py``), and from there the report's grouping and
``--retry-failed``'s choice read the code alone, as for new rows.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.commands.run import split_retryable
from ingest.items import FailureCode, ItemResult, Outcome
from ingest.planning.planner import make_plan
from ingest.report import build_report, failed_with_codes
from ingest.settings import load_settings
from ingest.state import RunLayout, StateStore, open_state
from ingest.state.old_results import code_from_reason
from ingest.state.records import decode_part, decode_shard, encode_part
from tests.plan.helpers import items_of, listing

# (reason, http_status) as workers wrote them before codes, and the code each gets now
OLD_FAILURES: list[tuple[str, int | None, FailureCode]] = [
    ("'a.jpg' is empty", None, FailureCode.REJECTED_IN_BATCH),
    ("'b.jpg' does not match its extension", None, FailureCode.REJECTED_IN_BATCH),
    ("too large for /user-files/upload/stream: max 100MB", 413, FailureCode.TOO_LARGE),
    ("unsupported file type for /user-files/upload/stream", 415, FailureCode.UNSUPPORTED_TYPE),
    ("refused by /user-files/upload/stream: bad field", 422, FailureCode.REJECTED),
    ("s3://src/c.jpg is gone (deleted since planning?)", 404, FailureCode.SOURCE_GONE),
    ("s3://src/d.jpg changed since planning (ETag differs)", 412, FailureCode.SOURCE_CHANGED),
    ("/data/e.jpg shrank while being read", None, FailureCode.SOURCE_CHANGED),
    ("access denied reading s3://src/f.jpg", 403, FailureCode.SOURCE_UNREADABLE),
    ("key '../g.jpg' leaves the source folder; refused", None, FailureCode.SOURCE_UNREADABLE),
    (
        "the storage refused the upload to https://s3/h.jpg: AccessDenied; the presigned URL "
        "may have expired: the item fails now and a rerun uploads it",
        403,
        FailureCode.STORAGE_REJECTED,
    ),
    ("no per-file result in the session", None, FailureCode.NO_RESULT),
    ("decoding failed on the server", None, FailureCode.PROCESSING_FAILED),
]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with open_state(f"file://{tmp_path}/state", load_settings()) as s:
        yield s


def _old_part(rows: list[dict[str, Any]]) -> bytes:
    """A results part as the workers before codes wrote it: no ``code`` field."""
    return gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())


@pytest.mark.parametrize(("reason", "status", "code"), OLD_FAILURES)
def test_an_old_failed_row_gets_its_code_when_read(
    reason: str, status: int | None, code: FailureCode
) -> None:
    row = {"o": 0, "key": "k.jpg", "size": 1, "outcome": "failed", "attempts": 1}
    row |= {"reason": reason} | ({"http_status": status} if status else {})
    (result,) = decode_part(_old_part([row]))
    assert (result.code, result.reason, result.http_status) == (code, reason, status)


def test_a_row_with_a_code_keeps_it_whatever_its_reason_says() -> None:
    new = ItemResult(0, "k.jpg", 1, Outcome.FAILED, None, "x is gone", 404, 1, "too_large")
    ok = ItemResult(1, "l.jpg", 1, Outcome.UPLOADED, "id", None, None, 1)
    assert decode_part(encode_part([new, ok])) == [new, ok]


@given(reason=st.one_of(st.none(), st.text(max_size=60)), status=st.none() | st.integers(0, 999))
def test_any_old_reason_maps_to_one_of_the_codes(reason: str | None, status: int | None) -> None:
    """The fallback never lets free text through: the value set stays the fixed codes."""
    assert code_from_reason(reason, status) in set(FailureCode)


async def test_an_old_results_part_is_reported_and_retried_by_code(store: StateStore) -> None:
    n = len(OLD_FAILURES) + 2
    plan = (
        await make_plan(
            listing(items_of([100 + i for i in range(n)])),
            settings=load_settings(plan={"shards": 1}),
            source_uri="s3://src/",
            store=store,
            run_id="old",
        )
    ).plan
    layout = RunLayout("old")
    shard = await store.get(layout.shard(0, plan.attempt))
    assert shard is not None
    items = list(decode_shard(shard.data))
    rows: list[dict[str, Any]] = []
    for o, (reason, status, _) in enumerate(OLD_FAILURES):
        row = {"o": o, "key": items[o].key, "size": items[o].size, "outcome": "failed"}
        rows.append(row | {"attempts": 1, "reason": reason, "http_status": status})
    up = len(OLD_FAILURES)  # one uploaded; the last item never got an outcome
    rows.append({"o": up, "key": items[up].key, "size": items[up].size, "outcome": "uploaded"})
    await store.create(layout.results_part(0, 0), _old_part(rows))

    report = await build_report(store, "old")

    expected: dict[str, int] = {"not_processed": 1}
    for _, _, code in OLD_FAILURES:
        expected[code.value] = expected.get(code.value, 0) + 1
    assert report.failed_by_reason == dict(sorted(expected.items()))
    assert "failures by reason: no_result 1, not_processed 1, processing_failed 1" in (
        report.summary()
    )
    blob = await store.get(layout.report_csv)
    assert blob is not None
    csv_codes = {r["key"]: r["code"] for r in csv.DictReader(io.StringIO(blob.data.decode()))}
    assert csv_codes[items[0].key] == "rejected_in_batch"
    assert csv_codes[items[up].key] == ""
    assert csv_codes[items[-1].key] == "not_processed"

    _, failed = await failed_with_codes(store, "old")
    retried, left_out = split_retryable(failed, retry_all=False)
    assert dict(left_out) == {
        "rejected_in_batch": 2,
        "too_large": 1,
        "unsupported_type": 1,
        "rejected": 1,
        "source_gone": 1,
        "source_changed": 2,
    }
    retried_keys = {i.key for i in retried}
    assert retried_keys == {items[o].key for o in (8, 9, 10, 11, 12)} | {items[-1].key}
    everything, none_left = split_retryable(failed, retry_all=True)
    assert (len(everything), none_left) == (len(OLD_FAILURES) + 1, {})
