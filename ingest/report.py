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

import collections
import csv
import dataclasses
import datetime as dt
import json
import logging
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from ingest.errors import IngestError
from ingest.items import Item, ItemResult, Outcome
from ingest.state.base import RunLayout, StateStore
from ingest.state.records import RunPlan, read_checkpoint, read_plan, read_results, read_shard

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "shard", "ordinal", "bucket", "key", "size", "outcome",
    "image_id", "reason", "http_status", "attempts",
)  # fmt: skip
NOT_PROCESSED = "not_processed"


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
        if self.failed_indexes:
            lines.append(f"failed indexes: {self.failed_indexes}")
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


async def shard_statuses(store: StateStore, plan: RunPlan) -> list[ShardStatus]:
    out = []
    for index, (items, nbytes) in enumerate(zip(plan.shard_items, plan.shard_bytes, strict=True)):
        cp = await read_checkpoint(store, plan.run_id, index)
        out.append(
            ShardStatus(
                index,
                items,
                nbytes,
                min(cp.count(), items),
                cp.worker_id,
                cp.generation,
                cp.updated_at,
            )
        )
    return out


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
            result = ItemResult(ordinal, item.key, item.size, Outcome.FAILED, reason=NOT_PROCESSED)
        elif result.key != item.key:
            raise ReportInvariantError(
                f"shard {index} ordinal {ordinal}: outcome for key {result.key!r} but the "
                f"plan has {item.key!r}; the results do not belong to this plan"
            )
        yield item, result


def _csv_row(index: int, item: Item, r: ItemResult) -> list[Any]:
    return [
        index, r.ordinal, item.bucket or "", item.key, item.size, r.outcome.value,
        r.image_id or "", r.reason or "", r.http_status or "", r.attempts,
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
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as full,
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as failures,
    ):
        writers = [csv.writer(full), csv.writer(failures)]
        for w in writers:
            w.writerow(CSV_COLUMNS)
        for index in range(plan.shards):
            items = await read_shard(store, run_id, index)
            if len(items) != plan.shard_items[index]:
                raise ReportInvariantError(
                    f"shard {index} holds {len(items)} items, run.json says "
                    f"{plan.shard_items[index]}; the shard file was changed after planning"
                )
            results = await read_results(store, layout, index)
            shard_done = True
            for item, r in merge_shard(index, items, results):
                by_outcome[r.outcome.value] += 1
                bytes_by[r.outcome.value] += item.size
                row = _csv_row(index, item, r)
                writers[0].writerow(row)
                if r.outcome is Outcome.FAILED:
                    reasons[r.reason or "unknown"] += 1
                    writers[1].writerow(row)
                    shard_done = shard_done and r.reason != NOT_PROCESSED
            if shard_done:
                complete.append(index)
        total = sum(by_outcome.values())
        if total != plan.items:
            raise ReportInvariantError(
                f"the report has {total} rows but the plan {plan.items} items"
            )
        await store.put(layout.report_csv, _read_back(full))
        failed_path = None
        if failed_only:
            failed_path = f"{layout.root}/failed.csv"
            await store.put(failed_path, _read_back(failures))

    finished = dt.datetime.now(dt.UTC)
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
        ledger=plan.ledger,
        unchanged=plan.unchanged,
    )
    await store.put(
        layout.report_json, json.dumps(report.to_json(), indent=1, sort_keys=True).encode()
    )
    log.info("report of run %s written", run_id, extra={"report": report.report_csv})
    return report


def _read_back(f: IO[str]) -> bytes:
    f.flush()
    f.seek(0)
    data: str = f.read()
    return data.encode("utf-8")


def _join(uri: str, path: str) -> str:
    return uri.rstrip("/") + "/" + path


async def failed_items(store: StateStore, run_id: str) -> tuple[RunPlan, list[Item]]:
    """The planned items of run ``run_id`` whose outcome is ``failed`` (for --retry-failed)."""
    plan = await read_plan(store, run_id)
    layout = RunLayout(run_id)
    out: list[Item] = []
    for index in range(plan.shards):
        items = await read_shard(store, run_id, index)
        results = await read_results(store, layout, index)
        out.extend(
            item for item, r in merge_shard(index, items, results) if r.outcome is Outcome.FAILED
        )
    return plan, out
