"""The completion report: every planned item exactly once, with its outcome.

Merges the shard files (what was planned) with the results parts (what became of it) into
``report.json`` (counts by outcome and reason, bytes, duration, throughput, failed
indexes) and ``report.csv`` (one row per planned item, in the spirit of an S3 Batch
Operations completion report). Items that never got an outcome (their index failed or was
never run) appear as ``failed`` with reason ``not_processed``, so nothing planned goes
missing from the report. The invariant is checked on every merge: an outcome for an
ordinal that was not planned, or for a different key than planned, is an error, not a row.

Memory: one shard's items and outcomes at a time; rows go to a temporary file, which is
then stored.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import IO, Any

from ingest.errors import IngestError, StateDamaged
from ingest.items import FailureCode, Item, ItemResult, Outcome
from ingest.state.base import RunLayout, StateStore
from ingest.state.csvcells import cell, csv_temp
from ingest.state.records import RunPlan, read_checkpoint, read_plan, read_results, read_shard

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "shard", "ordinal", "bucket", "key", "size", "outcome",
    "image_id", "code", "reason", "http_status", "attempts",
)  # fmt: skip
NOT_PROCESSED = FailureCode.NOT_PROCESSED.value


class ReportInvariantError(IngestError):
    """The results do not match the plan (an outcome for an unplanned item)."""


@dataclasses.dataclass
class Report:
    """The merged numbers of a run (``report.json``)."""

    run_id: str
    source: str
    planned_items: int
    planned_bytes: int
    created_at: str
    finished_at: str
    duration_seconds: float
    by_outcome: dict[str, int]
    bytes_by_outcome: dict[str, int]
    failed_by_reason: dict[str, int]
    filtered_by_reason: dict[str, int]
    skipped_records: int
    complete_indexes: list[int]
    failed_indexes: list[int]
    verdict: str | None
    report_csv: str
    failed_csv: str | None = None
    damaged: list[str] = dataclasses.field(default_factory=list)
    filtered_csv: str | None = None  # every filtered object with its reason (gzip CSV)
    ledger: str | None = None  # a recurring import's ledger name
    unchanged: int = 0  # listed objects the ledger holds as sent: not planned

    @property
    def uploaded_bytes(self) -> int:
        return self.bytes_by_outcome.get(Outcome.UPLOADED.value, 0)

    @property
    def failed(self) -> int:
        return self.by_outcome.get(Outcome.FAILED.value, 0)

    @property
    def ok(self) -> bool:
        """Every planned item has an outcome other than ``failed``."""
        return self.failed == 0

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        seconds = max(self.duration_seconds, 1e-9)
        processed = self.planned_items - self.failed_by_reason.get(NOT_PROCESSED, 0)
        doc["throughput"] = {
            "objects_per_second": round(processed / seconds, 3),
            "uploaded_bytes_per_second": round(self.uploaded_bytes / seconds),
        }
        return doc

    def summary(self) -> str:
        """A few lines for people."""
        outcomes = ", ".join(f"{n:,} {k}" for k, n in sorted(self.by_outcome.items()) if n)
        lines = [
            f"run {self.run_id}: {self.planned_items:,} planned objects: {outcomes or 'none'}",
            f"uploaded {self.uploaded_bytes / 1e6:,.1f} MB in {self.duration_seconds:,.1f} s",
        ]
        if self.ledger:
            lines.append(
                f"unchanged since earlier runs (ledger {self.ledger}): {self.unchanged:,} "
                "objects, not planned"
            )
        if self.failed_by_reason:
            reasons = ", ".join(f"{k} {n:,}" for k, n in sorted(self.failed_by_reason.items()))
            lines.append(f"failures by reason: {reasons}")
        if self.filtered_by_reason:
            filtered = ", ".join(f"{k} {n:,}" for k, n in sorted(self.filtered_by_reason.items()))
            lines.append(f"filtered before planning: {filtered}")
            if self.filtered_csv:
                lines.append(f"filtered objects and why: {self.filtered_csv}")
        if self.failed_indexes:
            lines.append(f"failed indexes: {self.failed_indexes}")
        for where in self.damaged:
            lines.append(f"damaged, not read: {where}")
        lines.append(f"report: {self.report_csv}")
        if self.failed_csv:
            lines.append(f"failures only: {self.failed_csv}")
        return "\n".join(lines)


@dataclasses.dataclass
class ShardStatus:
    index: int
    items: int
    bytes: int
    done: int
    worker: str
    generation: int
    updated_at: str

    @property
    def state(self) -> str:
        if self.done >= self.items:
            return "complete"
        return "in progress" if self.generation else "not started"


async def run_finished_at(store: StateStore, plan: RunPlan) -> dt.datetime:
    """When the run ended, from its own records, so rebuilding the report (``report``,
    ``resume`` of a complete run) keeps its duration and throughput: the last checkpoint
    write, else the finish an earlier report recorded, else now."""
    stamps = [s.updated_at for s in await shard_statuses(store, plan) if s.updated_at]
    if not stamps:
        earlier = await store.get(RunLayout(plan.run_id).report_json)
        if earlier is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                stamps = [str(json.loads(earlier.data)["finished_at"])]
    if not stamps:
        return dt.datetime.now(dt.UTC)
    return max(dt.datetime.fromisoformat(stamp) for stamp in stamps)


STATUS_READS = 16  # checkpoints read at once by status and the progress view


async def shard_statuses(
    store: StateStore, plan: RunPlan, concurrency: int = STATUS_READS
) -> list[ShardStatus]:
    """Every shard's progress from its checkpoint; at most ``concurrency`` reads at once
    (one at a time, a status of thousands of shards on S3 took minutes a tick)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> ShardStatus:
        async with gate:
            cp = await read_checkpoint(store, plan.run_id, index)
        items = plan.shard_items[index]
        return ShardStatus(
            index,
            items,
            plan.shard_bytes[index],
            min(cp.count(), items),
            cp.worker_id,
            cp.generation,
            cp.updated_at,
        )

    return list(await asyncio.gather(*(one(i) for i in range(plan.shards))))


def merge_shard(
    index: int, items: list[Item], results: dict[int, ItemResult]
) -> Iterator[tuple[Item, ItemResult]]:
    """Each planned item with its outcome (``not_processed`` when it has none).

    Raises ReportInvariantError for an outcome of an unplanned ordinal or another key.
    """
    extra = sorted(set(results) - set(range(len(items))))
    if extra:
        raise ReportInvariantError(
            f"shard {index}: outcomes for ordinals {extra[:5]} that were not planned "
            f"(the shard has {len(items)} items); the results do not belong to this plan"
        )
    for ordinal, item in enumerate(items):
        result = results.get(ordinal)
        if result is None:
            result = ItemResult(
                ordinal, item.key, item.size, Outcome.FAILED, reason=NOT_PROCESSED,
                code=NOT_PROCESSED,
            )  # fmt: skip
        elif result.key != item.key:
            raise ReportInvariantError(
                f"shard {index} ordinal {ordinal}: outcome for key {result.key!r} but the "
                f"plan has {item.key!r}; the results do not belong to this plan"
            )
        yield item, result


def code_of(r: ItemResult) -> str:
    """A failed result's code. Every failed result read or merged has one (results parts
    written before codes existed get one when read: ``state/old_results.py``)."""
    if r.code is None:
        raise ReportInvariantError(
            f"ordinal {r.ordinal} ({r.key!r}) failed without a failure code; "
            "this is a bug: please report it"
        )
    return r.code


def _csv_row(index: int, item: Item, r: ItemResult) -> list[Any]:
    return [
        index, r.ordinal, cell(item.bucket or ""), cell(item.key), item.size, r.outcome.value,
        cell(r.image_id or ""), r.code or "", cell(r.reason or ""), r.http_status or "",
        r.attempts,
    ]  # fmt: skip


async def build_report(
    store: StateStore,
    run_id: str,
    *,
    verdict: str | None = None,
    failed_indexes: list[int] | None = None,
    failed_only: bool = False,
) -> Report:
    """Merge run ``run_id`` and store ``report.json`` and ``report.csv`` (or ``failed.csv``).

    ``failed_only`` writes just the failures (``failed.csv``) beside the full report.
    """
    layout = RunLayout(run_id)
    plan = await read_plan(store, run_id)
    by_outcome: collections.Counter[str] = collections.Counter()
    bytes_by: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    complete: list[int] = []
    damaged: list[str] = []  # files that could not be read
    lost: list[str] = []  # damaged files whose loss leaves rows without an outcome
    unread_items = 0
    with csv_temp() as full, csv_temp() as failures:
        writers = [csv.writer(full), csv.writer(failures)]
        for w in writers:
            w.writerow(CSV_COLUMNS)
        for index in range(plan.shards):
            try:
                items = await read_shard(store, plan, index)
            except StateDamaged as exc:
                log.error("%s", exc)
                where = _join(store.uri, layout.shard(index, plan.attempt))
                damaged.append(where)
                lost.append(where)
                unread_items += plan.shard_items[index]
                continue
            if len(items) != plan.shard_items[index]:
                raise ReportInvariantError(
                    f"shard {index} holds {len(items)} items, run.json says "
                    f"{plan.shard_items[index]}; the shard file was changed after planning"
                )
            bad_parts: list[str] = []
            results = await read_results(store, layout, index, bad_parts)
            damaged.extend(bad_parts)
            if bad_parts and len(results) < len(items):
                lost.extend(bad_parts)
            shard_done = True
            for item, r in merge_shard(index, items, results):
                by_outcome[r.outcome.value] += 1
                bytes_by[r.outcome.value] += item.size
                row = _csv_row(index, item, r)
                writers[0].writerow(row)
                if r.outcome is Outcome.FAILED:
                    reasons[code_of(r)] += 1
                    writers[1].writerow(row)
                    shard_done = shard_done and r.code != NOT_PROCESSED
            if shard_done:
                complete.append(index)
        total = sum(by_outcome.values()) + unread_items
        if total != plan.items:
            raise ReportInvariantError(
                f"the report has {total} rows but the plan {plan.items} items"
            )
        await store.put_file(layout.report_csv, _rewound(full))
        failed_path = None
        if failed_only:
            failed_path = f"{layout.root}/failed.csv"
            await store.put_file(failed_path, _rewound(failures))

    finished = await run_finished_at(store, plan)
    started = dt.datetime.fromisoformat(plan.created_at)
    report = Report(
        run_id=run_id,
        source=plan.source,
        planned_items=plan.items,
        planned_bytes=plan.bytes,
        created_at=plan.created_at,
        finished_at=finished.isoformat(timespec="seconds"),
        duration_seconds=round((finished - started).total_seconds(), 3),
        by_outcome={o.value: by_outcome.get(o.value, 0) for o in Outcome},
        bytes_by_outcome={o.value: bytes_by.get(o.value, 0) for o in Outcome},
        failed_by_reason=dict(sorted(reasons.items())),
        filtered_by_reason=dict(plan.filtered),
        skipped_records=plan.skipped_records,
        complete_indexes=complete,
        failed_indexes=sorted(
            failed_indexes
            if failed_indexes is not None
            else set(range(plan.shards)) - set(complete)
        ),
        verdict=verdict,
        report_csv=_join(store.uri, layout.report_csv),
        failed_csv=_join(store.uri, failed_path) if failed_path else None,
        damaged=damaged,
        filtered_csv=_join(store.uri, plan.filtered_csv) if plan.filtered_csv else None,
        ledger=plan.ledger,
        unchanged=plan.unchanged,
    )
    await store.put(
        layout.report_json, json.dumps(report.to_json(), indent=1, sort_keys=True).encode()
    )
    log.info("report of run %s written", run_id, extra={"report": report.report_csv})
    if lost:
        raise StateDamaged(
            f"run {run_id}: the report at {report.report_csv} lacks the rows of damaged "
            f"state file(s) {', '.join(lost)}; for a results part, run "
            f"'aion-ingest resume {run_id}' (its items are redone); for a shard file, "
            "restore it or plan the source again under a new run id"
        )
    return report


def _rewound(f: IO[str]) -> IO[bytes]:
    """The bytes under a text temp file, from the start (streamed to the store)."""
    f.flush()
    f.seek(0)
    buffer: IO[bytes] = f.buffer  # type: ignore[attr-defined]
    buffer.seek(0)
    return buffer


def _join(uri: str, path: str) -> str:
    return uri.rstrip("/") + "/" + path


async def failed_items(store: StateStore, run_id: str) -> tuple[RunPlan, list[Item]]:
    """The planned items of run ``run_id`` whose outcome is ``failed`` (for --retry-failed)."""
    plan, failed = await failed_with_codes(store, run_id)
    return plan, [item for item, _ in failed]


async def failed_with_codes(
    store: StateStore, run_id: str
) -> tuple[RunPlan, list[tuple[Item, str]]]:
    """Each failed item of run ``run_id`` with its failure's code (a FailureCode value)."""
    plan = await read_plan(store, run_id)
    layout = RunLayout(run_id)
    out: list[tuple[Item, str]] = []
    for index in range(plan.shards):
        items = await read_shard(store, plan, index)
        results = await read_results(store, layout, index)
        out.extend(
            (item, code_of(r))
            for item, r in merge_shard(index, items, results)
            if r.outcome is Outcome.FAILED
        )
    return plan, out
