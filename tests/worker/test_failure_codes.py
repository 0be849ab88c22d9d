"""Every failure path sets a code, and every code is set by some path.

The walk drives the real :class:`Uploader` through each way an item can fail, with the
exceptions the real edges build (``api.errors.classify`` for the API's answers,
``s3.errors.translate`` for S3's, a real local folder for the local source), and collects
the results the accounting hands on. The codes it sees, with the report's
``not_processed``, must be every :class:`FailureCode`: a code no path produces, or a path
without a code (``Transfer.finish`` refuses it), fails here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from ingest.api.errors import ApiErrorInfo, StorageRejected, classify
from ingest.api.files import FileSpec, exact_chunks
from ingest.api.models import StreamBatchUploadResponse, UploadSessionResultItem
from ingest.errors import IngestError, ItemRejected, QuotaExhausted, SourceItemError
from ingest.items import FailureCode, Item, ItemResult, Outcome
from ingest.report import merge_shard
from ingest.s3.errors import translate
from ingest.settings import SourceSettings, load_settings
from ingest.sources.base import Source
from ingest.sources.local import LocalSource
from ingest.sources.s3 import S3Source
from ingest.streams import ByteStream
from ingest.worker.accounting import Accounting
from ingest.worker.batcher import Pending
from ingest.worker.failures import failure_code
from ingest.worker.naming import upload_fields
from ingest.worker.pacing import Limiter
from ingest.worker.uploads import Uploader
from tests.fixtures.s3 import S3Bucket
from tests.worker.fakeclock import FakeClock
from tests.worker.fakes import FakeApi, FakeSource

pytestmark = pytest.mark.timeout(30)


def _api_error(status: int, message: str = "no") -> IngestError:
    return classify(
        status, ApiErrorInfo(message=message), endpoint="/user-files/upload/stream", request_id="r"
    )


def _s3_error(code: str, status: int) -> IngestError:
    exc = ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )
    return translate(exc, "s3://b/k.jpg", "read")


class RefusingApi(FakeApi):
    """Single uploads refused with ``error``; a stream-batch answered with one rejection
    (``bad.jpg``), one server-side failure (``fails.jpg``) and no result for ``lost.jpg``."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.error = error

    async def upload_stream(self, file: FileSpec, **kw: Any) -> Any:
        assert self.error is not None
        raise self.error

    async def upload_presigned(self, file: FileSpec, **kw: Any) -> Any:
        assert self.error is not None
        raise self.error

    async def upload_stream_batch(
        self, files: Sequence[FileSpec], **kw: Any
    ) -> StreamBatchUploadResponse:
        names = [f.filename for f in files]
        for f in files:  # the body reads every file, as the real request does
            stream = await f.open()
            async for _ in stream:
                pass
        session = "s-1"
        self.sessions[session] = [
            UploadSessionResultItem(
                filename=n,
                image_id=None if n == "fails.jpg" else f"id-{n}",
                status="failed" if n == "fails.jpg" else "completed",
                error_message="decoding failed" if n == "fails.jpg" else None,
                object_key="k",
            )
            for n in names
            if n not in ("bad.jpg", "lost.jpg")
        ]
        return StreamBatchUploadResponse.model_validate(
            {
                "session_id": session,
                "total_files": len(files),
                "accepted_files": len(files) - 1,
                "rejected_files": 1,
                "status": "completed",
                "rejections": [{"filename": "bad.jpg", "index": names.index("bad.jpg"),
                                "reason": "'bad.jpg' does not match its extension"}],
            }
        )  # fmt: skip


class ExactApi(FakeApi):
    """Reads a single upload's body as the real client does (exactly the planned size)."""

    async def upload_stream(self, file: FileSpec, **kw: Any) -> Any:
        async for _ in exact_chunks(file):
            pass
        raise AssertionError("a body of the wrong size was sent")


class FailingSource(FakeSource):
    """Opening any item raises ``error``."""

    def __init__(self, error: IngestError) -> None:
        super().__init__({})
        self.error = error

    async def open(self, item: Item) -> ByteStream:
        raise self.error


def _uploader(api: FakeApi, source: Source, got: list[ItemResult]) -> Uploader:
    # 'fetch': a batch's lost or failed files are told at once (session results)
    settings = load_settings(api={"tier": "ENTERPRISE"}, worker={"batch_results": "fetch"})
    acct = Accounting(sink=got.append)
    return Uploader(api, source, settings.worker, acct, Limiter(1e6, clock=FakeClock()))


def _pending(ordinal: int, item: Item) -> Pending:
    settings = load_settings()
    return Pending(ordinal, item, upload_fields(item, settings.worker, "ns"))


async def _single(api: FakeApi, source: Source, item: Item) -> ItemResult:
    got: list[ItemResult] = []
    await _uploader(api, source, got).send_single(_pending(0, item))
    (result,) = got
    assert result.outcome is Outcome.FAILED, result
    return result


# (what fails, the error the real edge raises for it, the code expected)
_API_REFUSALS = [
    ("400 (an empty file)", _api_error(400, "file is empty"), FailureCode.REJECTED),
    ("422 (invalid fields)", _api_error(422), FailureCode.REJECTED),
    ("409 (another 4xx)", _api_error(409), FailureCode.REJECTED),
    ("413", _api_error(413), FailureCode.TOO_LARGE),
    ("415", _api_error(415), FailureCode.UNSUPPORTED_TYPE),
    (
        "presigned PUT refused",
        StorageRejected("the storage refused the upload", status=403, code="AccessDenied"),
        FailureCode.STORAGE_REJECTED,
    ),
]
_S3_READS = [
    ("NoSuchKey", _s3_error("NoSuchKey", 404), FailureCode.SOURCE_GONE),
    ("404 without a code", _s3_error("", 404), FailureCode.SOURCE_GONE),
    ("PreconditionFailed", _s3_error("PreconditionFailed", 412), FailureCode.SOURCE_CHANGED),
    ("InvalidObjectState", _s3_error("InvalidObjectState", 403), FailureCode.SOURCE_UNREADABLE),
    ("AccessDenied", _s3_error("AccessDenied", 403), FailureCode.SOURCE_UNREADABLE),
    ("another 4xx", _s3_error("InvalidRange", 416), FailureCode.SOURCE_UNREADABLE),
]


async def _walk_api_and_s3() -> dict[str, FailureCode]:
    seen: dict[str, FailureCode] = {}
    item = Item("photos/x.jpg", 10, etag="e")
    for what, error, expected in _API_REFUSALS:
        assert isinstance(error, ItemRejected), what
        r = await _single(RefusingApi(error), FakeSource({item.key: b"x" * 10}), item)
        assert (r.code, r.http_status) == (expected, error.status), what
        seen[what] = expected
    # a 402 naming the quota: the file is recorded, the worker's quota gate closes
    quota = _api_error(402, "monthly upload quota exceeded")
    assert isinstance(quota, QuotaExhausted)
    r = await _single(RefusingApi(quota), FakeSource({item.key: b"x" * 10}), item)
    assert r.code == FailureCode.QUOTA_EXHAUSTED, r
    seen["402 (quota used up)"] = FailureCode.QUOTA_EXHAUSTED
    for what, error, expected in _S3_READS:
        assert isinstance(error, SourceItemError), what
        r = await _single(FakeApi(), FailingSource(error), item)
        assert r.code == expected, what
        seen[what] = expected
    return seen


async def _walk_local(tmp_path: Path) -> dict[str, FailureCode]:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("gone.jpg", "changed.jpg", "fifo.jpg", "short.jpg"):
        (src / name).write_bytes(b"\xff\xd8" + name.encode() * 50)
    source = LocalSource(str(src))
    items = {i.key: i for i in [i async for i in source.list()]}
    (src / "gone.jpg").unlink()
    st = (src / "changed.jpg").stat()
    os.utime(src / "changed.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    (src / "fifo.jpg").unlink()
    os.mkfifo(src / "fifo.jpg")
    cases = {
        "local: deleted": (items["gone.jpg"], FailureCode.SOURCE_GONE),
        "local: changed": (items["changed.jpg"], FailureCode.SOURCE_CHANGED),
        "local: a FIFO now": (items["fifo.jpg"], FailureCode.SOURCE_UNREADABLE),
        "local: key leaves the root": (Item("../x.jpg", 3), FailureCode.SOURCE_UNREADABLE),
    }
    seen: dict[str, FailureCode] = {}
    for what, (item, expected) in cases.items():
        r = await _single(FakeApi(), source, item)
        assert r.code == expected, (what, r)
        seen[what] = expected
    # planned without an ETag and bigger than it is: the request body comes up short
    short = Item("short.jpg", items["short.jpg"].size + 5)
    r = await _single(ExactApi(), source, short)
    assert r.code == FailureCode.SOURCE_CHANGED, r
    seen["local: fewer bytes than planned"] = FailureCode.SOURCE_CHANGED
    return seen


async def _walk_s3(bucket: S3Bucket) -> dict[str, FailureCode]:
    """The S3 source on moto: deleted, replaced, and a size that no longer matches."""
    for key in ("gone.jpg", "replaced.jpg", "resized.jpg"):
        bucket.put(key, b"\xff\xd8" + key.encode() * 40)
    source = S3Source(bucket.uri(), SourceSettings(endpoint_url=bucket.endpoint_url))
    async with source:
        items = {i.key: i for i in [i async for i in source.list()]}
        bucket.server.client().delete_object(Bucket=bucket.name, Key="gone.jpg")
        bucket.put("replaced.jpg", b"\xff\xd8 new bytes")
        resized = dataclasses.replace(items["resized.jpg"], etag=None, size=7)
        cases = {
            "s3: deleted": (items["gone.jpg"], FailureCode.SOURCE_GONE),
            "s3: replaced (If-Match)": (items["replaced.jpg"], FailureCode.SOURCE_CHANGED),
            "s3: size differs, no ETag": (resized, FailureCode.SOURCE_CHANGED),
        }
        seen: dict[str, FailureCode] = {}
        for what, (item, expected) in cases.items():
            r = await _single(FakeApi(), source, item)
            assert r.code == expected, (what, r)
            seen[what] = expected
    return seen


async def _walk_batch() -> dict[str, FailureCode]:
    names = ["ok.jpg", "bad.jpg", "fails.jpg", "lost.jpg", "ok2.jpg", "ok3.jpg"]
    objects = {n: b"\xff\xd8" + n.encode() for n in names}
    got: list[ItemResult] = []
    uploader = _uploader(RefusingApi(), FakeSource(objects), got)
    await uploader.send_batch([_pending(i, Item(n, len(objects[n]))) for i, n in enumerate(names)])
    codes = {r.key: r.code for r in got}
    assert codes == {
        "ok.jpg": None,
        "ok2.jpg": None,
        "ok3.jpg": None,
        "bad.jpg": FailureCode.REJECTED_IN_BATCH,
        "fails.jpg": FailureCode.PROCESSING_FAILED,
        "lost.jpg": FailureCode.NO_RESULT,
    }
    return {f"batch: {k}": FailureCode(v) for k, v in codes.items() if v}


async def test_every_failure_path_sets_a_code_and_every_code_is_set(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    seen = await _walk_api_and_s3()
    seen |= await _walk_local(tmp_path)
    seen |= await _walk_s3(s3_bucket)
    seen |= await _walk_batch()
    # the report's rows for items no worker ended
    items = [Item("never.jpg", 1)]
    ((_, row),) = list(merge_shard(0, items, {}))
    assert (row.outcome, row.code) == (Outcome.FAILED, FailureCode.NOT_PROCESSED)
    seen["report: never processed"] = FailureCode.NOT_PROCESSED
    assert set(seen.values()) == set(FailureCode)


_STATUSES = st.one_of(st.none(), st.integers(100, 599))


@given(
    code=st.one_of(
        st.none(), st.text(max_size=20), st.sampled_from([c.value for c in FailureCode])
    ),
    status=_STATUSES,
    rejected=st.booleans(),
)
def test_any_item_error_gets_one_of_the_codes(
    code: str | None, status: int | None, rejected: bool
) -> None:
    """Whatever an edge puts in an item error, the code is one of the fixed set."""
    error = (ItemRejected if rejected else SourceItemError)("x", status=status, code=code)
    assert failure_code(error) in set(FailureCode)
