"""Sending items by their route, and turning the API's answers into outcomes.

Item-level trouble (the API refusing one file, the object gone or changed at the source)
becomes a ``failed`` outcome with reason, HTTP status and attempts; the shard goes on.
Anything else (retries exhausted, a fatal 401/403/quota) propagates and stops the shard.

A batch request fails as a whole when one of its files cannot be read from the source (the
multipart body breaks mid-way) or when the API refuses the request itself (e.g. 413): then
the unreadable file fails alone and the others are sent again, by batch or one by one, so
one bad file never takes its neighbours down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence

from ingest.api.errors import attempts_of
from ingest.api.files import FileSpec
from ingest.api.models import (
    StreamBatchFileResult,
    StreamBatchUploadResponse,
    UploadSessionResultItem,
)
from ingest.api.observe import RequestObserver
from ingest.errors import ItemRejected, QuotaExhausted, SourceItemError
from ingest.items import FailureCode, Outcome, PendingId
from ingest.settings import WorkerSettings
from ingest.sources.base import Source
from ingest.streams import ByteStream
from ingest.worker.accounting import Accounting, Transfer
from ingest.worker.batcher import Pending
from ingest.worker.failures import failure_code
from ingest.worker.intents import IntentLog, Sent, Skip
from ingest.worker.naming import Route
from ingest.worker.pacing import Limiter
from ingest.worker.quota import QuotaGate, is_quota_reason
from ingest.worker.uploads_api import UploadsApi

log = logging.getLogger(__name__)

# Batches up to this size get per-file results inline (uploads-api.md); above, the
# session results endpoint has them.
INLINE_RESULTS_MAX = 5
# Session results per page: one page holds a whole ENTERPRISE batch (50 files).
RESULTS_PAGE = 100
# The reason on an 'uploaded' outcome of worker.batch_results=accept.
ACCEPTED_UNCHECKED = "accepted in a stream-batch; per-file result not fetched (no image id)"
# The reason on an 'uploaded' outcome of worker.batch_results=list until the run resolves
# its image id (ingest/worker/ids.py).
ID_PENDING = "accepted in a stream-batch; image id pending (resolved after the workers)"

Slot = contextlib.AbstractAsyncContextManager[object]
"""One upload request in flight (the pipeline's semaphore, ``worker.concurrency``)."""


@dataclasses.dataclass
class Uploader:
    """Everything a route needs: the API, the source, the worker's settings, the pace and
    the books."""

    client: UploadsApi
    source: Source
    worker: WorkerSettings
    accounting: Accounting
    limiter: Limiter
    observer: RequestObserver | None = None  # metrics: hears how long source reads take
    source_endpoint: str = "source:read"  # how source reads are named to the observer
    # what this run sent before each request (ingest/worker/intents.py); None: not recorded
    intents: IntentLog | None = None
    quota: QuotaGate = dataclasses.field(default_factory=QuotaGate)  # the month's uploads

    def spec(self, p: Pending, transfer: Transfer) -> FileSpec:
        """The file as the client sees it: re-opened from the source for every attempt."""

        async def opener() -> ByteStream:
            transfer.bytes_sent = 0
            stream = await self._open(p)
            return self.accounting.counting(self.limiter.pace(stream), transfer)

        return FileSpec(p.fields.filename, p.item.size, p.fields.content_type, opener)

    async def _open(self, p: Pending) -> ByteStream:
        """Open the item at the source; the observer hears how long it took."""
        observer = self.observer
        if observer is None:
            return await self.source.open(p.item)
        started = time.monotonic()
        code = "error"
        try:
            stream = await self.source.open(p.item)
            code = "200"
            return stream
        finally:
            observer.request_done(self.source_endpoint, code, time.monotonic() - started)

    async def send_single(self, p: Pending) -> None:
        with self.accounting.transfer(p.ordinal, p.item) as t:
            try:
                await self._single_outcome(p, t)
            finally:
                self._count_earlier([t])

    async def _single_outcome(self, p: Pending, t: Transfer, record: Sent | None = None) -> None:
        t.route = p.fields.route.value
        if self.quota.closed:
            self.quota.record(t)
            return
        try:
            await self._single(p, t, record)
        except (ItemRejected, SourceItemError) as exc:
            _failed(t, exc)
        except QuotaExhausted as exc:
            self.quota.close(exc.message)
            self.quota.record(t, attempts_of(exc))

    async def _single(self, p: Pending, t: Transfer, record: Sent | None = None) -> None:
        w = self.worker
        spec = self.spec(p, t)
        if record is None:
            record = await self._intend(p.fields.route.value, [p])
        if p.fields.route is Route.PRESIGNED:
            confirmed = await self.client.upload_presigned(
                spec,
                idempotency_key=p.fields.idempotency_key,
                storage_target=w.storage_target,
                checksum=p.item.sha256,
            )
            t.finish(Outcome.UPLOADED, image_id=confirmed.upload_id, attempts=confirmed.attempts)
            self._observed(t)
            return
        r = await self.client.upload_stream(
            spec,
            title=p.fields.title,
            tags=p.fields.tags,
            auto_describe=w.auto_describe,
            skip_duplicates=w.skip_duplicates,
            storage_target=w.storage_target,
        )
        if r.skipped:
            image_id = r.skipped_existing_image_id or r.image_id
            await self._skipped(record, [(p, t, image_id)], r.attempts, retried=r.attempts > 1)
        else:
            t.finish(Outcome.UPLOADED, image_id=r.image_id, attempts=r.attempts)
            self._observed(t)

    async def send_batch(self, batch: Sequence[Pending], slot: Slot | None = None) -> None:
        """Send ``batch``, holding ``slot`` only while an upload request is out.

        The session-results fetch that follows a batch of more than 5 files runs outside
        the slot (the concurrency setting counts upload requests), so at high latency the
        next batch goes out while this one waits for its results; the limiter inside the
        client still paces the fetch, it is a request against the key's budget.
        """
        transfers = [self.accounting.open(p.ordinal, p.item) for p in batch]
        try:
            await self._batch(
                list(zip(batch, transfers, strict=True)), slot or contextlib.nullcontext()
            )
        finally:
            self._count_earlier(transfers)
            for t in transfers:
                self.accounting.close(t)

    async def _batch(self, pairs: list[tuple[Pending, Transfer]], slot: Slot) -> None:
        w = self.worker
        # one intent record for the request and any re-send of its files below
        record = (
            None
            if self.quota.closed
            else await self._intend(Route.BATCH.value, [p for p, _ in pairs])
        )
        rounds = 0
        while pairs:
            rounds += 1
            for _, t in pairs:
                t.route = Route.BATCH.value
            if self.quota.closed:
                for _, t in pairs:
                    self.quota.record(t)
                return
            opened: list[Transfer] = []  # in the order the body opened them
            specs = [_noting_open(self.spec(p, t), t, opened) for p, t in pairs]
            sent = time.time()
            try:
                async with slot:
                    r = await self.client.upload_stream_batch(
                        specs,
                        tags=pairs[0][0].fields.tags,
                        auto_describe=w.auto_describe,
                        skip_duplicates=w.skip_duplicates,
                        intent=w.intent,
                        storage_target=w.storage_target,
                    )
            except SourceItemError as exc:
                # Which file broke the body: the body reads its files one after the
                # other, so the last one opened (a 0-byte file that fails to open has
                # sent all of its 0 bytes: counting bytes cannot tell).
                culprit = next((pt for pt in pairs if opened and pt[1] is opened[-1]), pairs[0])
                _failed(culprit[1], exc)
                pairs = [pt for pt in pairs if pt is not culprit]
                continue
            except QuotaExhausted as exc:  # refused as a whole: send what still fits
                fits = await self.quota.room(self.client, len(pairs), exc)
                for _, t in pairs[fits:]:
                    self.quota.record(t, attempts_of(exc))
                pairs = pairs[:fits]
                continue
            except ItemRejected as exc:
                if len(pairs) == 1:
                    _failed(pairs[0][1], exc)
                    return
                log.info("batch of %d refused (%s): sending its files one by one", len(pairs), exc)
                for p, t in pairs:
                    fields = dataclasses.replace(p.fields, route=Route.STREAM)
                    async with slot:
                        await self._single_outcome(dataclasses.replace(p, fields=fields), t, record)
                return
            # a body broken by an unreadable file may have left the files before it stored
            await self._batch_outcomes(
                pairs, r, sent, time.time(), record=record, resent=rounds > 1
            )
            return

    async def _batch_outcomes(
        self,
        pairs: list[tuple[Pending, Transfer]],
        r: StreamBatchUploadResponse,
        sent: float,
        answered: float,
        *,
        record: Sent | None = None,
        resent: bool = False,
    ) -> None:
        attempts = r.attempts
        by_name = {p.fields.filename: t for p, t in pairs}
        pending_by_name = {p.fields.filename: p for p, _ in pairs}
        skips: list[tuple[Pending, Transfer, str | None]] = []
        for rej in r.rejections or []:
            if rej.index is not None and 0 <= rej.index < len(pairs):
                rejected: Transfer | None = pairs[rej.index][1]
            else:
                rejected = by_name.get(rej.filename)
            if rejected is not None and is_quota_reason(rej.reason):
                self.quota.close(rej.reason or "quota")  # the files beyond what was left
                self.quota.record(rejected, attempts)
            elif rejected is not None:
                rejected.finish(
                    Outcome.FAILED,
                    reason=rej.reason,
                    attempts=attempts,
                    code=FailureCode.REJECTED_IN_BATCH,
                )
        results: Sequence[StreamBatchFileResult | UploadSessionResultItem]
        if r.immediate_results and len(pairs) <= INLINE_RESULTS_MAX:
            results = r.immediate_results
        elif self.worker.batch_results == "accept" and _all_accounted(pairs, r):
            for _, accepted in pairs:
                if accepted.outcome is None:
                    accepted.finish(Outcome.UPLOADED, reason=ACCEPTED_UNCHECKED, attempts=attempts)
            return
        elif self.worker.batch_results == "list" and _all_accounted(pairs, r):
            for p, accepted in pairs:
                if accepted.outcome is None:
                    pending = PendingId(r.session_id, p.fields.filename, sent, answered)
                    accepted.finish(
                        Outcome.UPLOADED, reason=ID_PENDING, attempts=attempts, pending=pending
                    )
            return
        else:  # every page of the session's results
            pages = self.client.iter_session_results(r.session_id, page_size=RESULTS_PAGE)
            results = [x async for x in pages]
        for res in results:
            t = by_name.get(res.filename)
            if t is None or t.outcome is Outcome.FAILED:
                continue
            if getattr(res, "skipped", False) or res.status == "skipped":
                image_id = getattr(res, "skipped_existing_image_id", None) or res.image_id
                skips.append((pending_by_name[res.filename], t, image_id))
            elif res.status == "failed" or getattr(res, "error", None):
                reason = getattr(res, "error", None) or getattr(res, "error_message", None)
                t.finish(
                    Outcome.FAILED,
                    reason=reason or "failed",
                    attempts=attempts,
                    code=FailureCode.PROCESSING_FAILED,
                )
            else:
                t.finish(Outcome.UPLOADED, image_id=res.image_id, attempts=attempts)
                self._observed(t)
        await self._skipped(record, skips, attempts, retried=attempts > 1 or resent)
        for _, t in pairs:
            if t.outcome is None:
                # The API accepted the request but named no result for this file: record
                # it as failed so the report says so; a rerun re-sends it harmlessly.
                t.finish(
                    Outcome.FAILED,
                    reason="no per-file result in the session",
                    attempts=1,
                    code=FailureCode.NO_RESULT,
                )

    # --- intent records (ingest/worker/intents.py) -----------------------------------------

    async def _intend(self, route: str, items: Sequence[Pending]) -> Sent | None:
        """Record what is about to be sent, before sending it (one store write)."""
        if self.intents is None:
            return None
        return await self.intents.sent(route, [p.ordinal for p in items])

    async def _skipped(
        self,
        record: Sent | None,
        skips: Sequence[tuple[Pending, Transfer, str | None]],
        attempts: int,
        *,
        retried: bool,
    ) -> None:
        """Answers "skipped": a real duplicate, or our own upload whose answer was lost."""
        log_ = self.intents
        asked = (
            []
            if log_ is None or record is None
            else [
                Skip(p.ordinal, image_id, log_.since(record, p.ordinal))
                for p, _, image_id in skips
                if log_.questioned(p.ordinal, retried=retried)
            ]
        )
        verdicts = {} if not asked or log_ is None else await log_.settle(asked, self.client)
        for p, t, image_id in skips:
            v = verdicts.get(p.ordinal)
            if v is not None and v.ours:
                t.finish(Outcome.UPLOADED, image_id=image_id, reason=v.reason, attempts=attempts)
            else:
                reason = None if v is None else v.reason
                t.finish(
                    Outcome.SKIPPED_DUPLICATE, image_id=image_id, reason=reason, attempts=attempts
                )

    def _observed(self, t: Transfer) -> None:
        if self.intents is not None and t.image_id:
            self.intents.observed(t.image_id)

    def _count_earlier(self, transfers: Sequence[Transfer]) -> None:
        """Add the requests earlier workers sent to each outcome's attempts."""
        if self.intents is None:
            return
        for t in transfers:
            if t.outcome is not None:
                t.attempts = self.intents.attempts(t.ordinal, t.attempts)


def _noting_open(spec: FileSpec, t: Transfer, opened: list[Transfer]) -> FileSpec:
    """``spec`` appending ``t`` to ``opened`` each time the request body opens it."""
    inner = spec.open

    async def opener() -> ByteStream:
        opened.append(t)
        return await inner()

    return dataclasses.replace(spec, open=opener)


def _all_accounted(pairs: list[tuple[Pending, Transfer]], r: StreamBatchUploadResponse) -> bool:
    """The answer names every file's fate: the accepted count plus the rejections we
    matched make the whole batch. Anything else (a count that does not add up, a failed
    session) goes to the session results instead of being guessed."""
    rejected = sum(1 for _, t in pairs if t.outcome is Outcome.FAILED)
    return (
        r.status != "failed"
        and r.total_files == len(pairs)
        and r.accepted_files == len(pairs) - rejected
    )


def _failed(t: Transfer, exc: ItemRejected | SourceItemError) -> None:
    t.finish(
        Outcome.FAILED,
        reason=exc.message,
        http_status=exc.status,
        attempts=attempts_of(exc),
        code=failure_code(exc),
    )
