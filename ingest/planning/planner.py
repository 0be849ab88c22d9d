"""The planner: listing → filters → balanced shards → state store, then run.json last.

:func:`plan_source` opens the source, the filters and the API (for ``quota-check``) and
calls :func:`make_plan`, which does the work. Two passes over a local spool keep memory
flat however long the listing (:mod:`ingest.planning.spool`): pass 1 streams the filtered
listing to disk while counting; then ``quota-check`` is asked, before anything is
written; pass 2 reads the spool and writes the shards one at a time
(:mod:`ingest.planning.balance` says where each item goes). ``run.json`` is created last
with create-if-absent, so its presence means the plan is complete. Each attempt writes its
shards under its own attempt id (``shards/<attempt>/``), named in run.json with each
shard's ETag: two planners of one run id never mix their shards (the one whose run.json
was created wins; the other removes its shards), and shards without run.json (an
interrupted attempt) are removed by the attempt that completes the plan.

With a ledger (``plan.ledger``, a recurring import), pass 1 also anti-joins the listing
with the ledger (:class:`ingest.ledger.join.AntiJoin`): unchanged objects never reach the
spool, and the plan records the new / changed / unchanged counts. A previous run of the
import whose ledger merge never happened is merged first (:func:`finish_pending`), and
this run is registered as pending before ``run.json`` exists, so a crash before its own
merge is finished by the next run.

A dry run may stop the listing after ``limit`` objects (``plan --dry-run --limit N``, the
chart's ``helm test`` preflight): it checks S3 access, the key and the quota in seconds
on any bucket, and the outcome says the listing was cut short. A plan that would be run
always reads the whole listing, so a limit without a dry run is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import logging
import secrets
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from ingest.errors import ConfigError, FatalError, StateConflict
from ingest.items import Item, Listed, item_of
from ingest.ledger.entries import check_name
from ingest.ledger.join import AntiJoin
from ingest.ledger.merge import finish_pending, register_run
from ingest.ledger.store import Ledger
from ingest.planning.balance import Cost, Cutter, shard_count
from ingest.planning.filtered import FilteredWriter
from ingest.planning.model import QuotaCheck, quota_to_json
from ingest.planning.runid import check_run_id, new_run_id
from ingest.planning.spool import SpoolStats, SpoolWriter, read_spool
from ingest.settings import Settings
from ingest.sources.base import in_batches
from ingest.state.base import RunLayout, StateStore
from ingest.state.records import RunPlan, create_plan, find_plan, shard_compressor

log = logging.getLogger(__name__)

Status = Literal["planned", "completed", "existing", "dry_run"]
_PROGRESS_EVERY = 100_000


class ItemFilter(Protocol):
    """Why an item is dropped (a reason string), or None to keep it."""

    def reason(self, item: Item) -> str | None: ...

    def reasons(self, rows: Sequence[Listed]) -> list[str | None] | None:
        """:meth:`reason` of each listed row; None when every row is kept."""
        ...


@dataclasses.dataclass
class PlanOutcome:
    """The plan and what planning did: ``planned`` (new), ``completed`` (a half plan was
    redone), ``existing`` (run.json was already there: nothing changed), ``dry_run``."""

    plan: RunPlan
    status: Status
    state_uri: str | None = None
    # The listing was stopped after this many objects (a dry run's ``limit``), so the
    # counts, shards and quota answer cover those alone; None: the whole source was read.
    cut_short_at: int | None = None


async def make_plan(
    items: AsyncIterator[Item] | None = None,
    *,
    batches: AsyncIterator[list[Listed]] | None = None,
    settings: Settings,
    source_uri: str,
    store: StateStore | None = None,
    run_id: str | None = None,
    item_filter: ItemFilter | None = None,
    filters_description: dict[str, Any] | None = None,
    quota_check: QuotaCheck | None = None,
    skipped_records: Callable[[], int] | None = None,
    dry_run: bool = False,
    limit: int | None = None,
) -> PlanOutcome:
    """Plan ``items`` into run ``run_id`` (a new id when None) in ``store``; or ``batches``
    instead, the listing in lists (a source's ``batches()``: the fast way).

    ``store`` may be None only for a dry run. ``limit`` (a dry run only) stops reading
    ``items`` after that many. Raises FatalError when quota-check says the run cannot
    proceed (unless ``plan.ignore_quota``), ConfigError for a bad run id or limit.
    """
    if items is not None:
        if batches is not None:
            raise ValueError("give items or batches, not both")
        batches = in_batches(items)
    elif batches is None:
        raise ValueError("give items or batches")
    if limit is not None:
        check_limit(limit, dry_run)
    run_id = check_run_id(run_id) if run_id else new_run_id()
    layout = RunLayout(run_id)
    if store is None and not dry_run:
        raise ValueError("a store is needed unless dry_run")
    if store is not None:
        existing = await find_plan(store, run_id)
        if existing is not None:
            if existing.source != source_uri:
                raise ConfigError(
                    f"run {run_id} was planned from {existing.source}; you gave {source_uri}: "
                    f"continue it with 'aion-ingest resume {run_id}', or choose another --run-id"
                )
            return PlanOutcome(existing, "existing", store.uri)

    cost = Cost.from_settings(settings.plan)
    ledger = check_name(settings.plan.ledger) if settings.plan.ledger else None
    if ledger and store is None:
        raise ConfigError(
            f"--ledger {ledger} needs the state store that holds it: pass --state URI"
        )
    with tempfile.TemporaryDirectory(prefix="aion-plan-") as tmp:
        spool = Path(tmp) / "spool.jsonl.gz"
        dropped = FilteredWriter(Path(tmp) / "filtered.csv.gz")
        join = None
        if ledger and store is not None:
            join = await _open_join(store, ledger, settings.plan.changed, Path(tmp), dry_run)
        head = _Head(limit)
        stats, filtered, listed = await _spool_listing(
            head.of(batches),
            item_filter,
            spool,
            cost,
            dropped,
            join,
        )
        quota = await _ask_quota(quota_check, stats.items, settings)
        n = shard_count(stats.items, stats.bytes, stats.half_max_cost, cost, settings.plan.shards)
        if settings.plan.shards is None:  # one shard per worker at least (``run -p P``)
            n = max(n, min(settings.plan.min_shards, stats.items))
        plan = RunPlan(
            run_id=run_id,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            source=source_uri,
            filters=filters_description or {},
            settings_digest=settings_digest(settings),
            shard_items=[],
            shard_bytes=[],
            shard_etags=[],
            items=stats.items,
            bytes=stats.bytes,
            listed=listed,
            filtered=dict(sorted(filtered.items())),
            skipped_records=skipped_records() if skipped_records else 0,
            histogram=stats.histogram_dict(),
            quota=quota,
            item_cost_bytes=cost.per_item,
            attempt=secrets.token_hex(6),
        )
        if join is not None:
            counts = {str(k): v for k, v in join.counts.items()}
            plan.ledger, plan.changed_action = ledger, join.changed
            plan.new, plan.changed = counts["new"], counts["changed"]
            plan.unchanged = counts["unchanged"]
        if dry_run or store is None:
            await _write_shards(plan, spool, stats, n, cost, None, layout)
            cut = limit if head.cut_short else None
            return PlanOutcome(plan, "dry_run", store.uri if store else None, cut)
        stale = [p async for p in store.list(f"{layout.root}/shards/")]
        if stale:
            log.warning(
                "run %s has shards but no run.json (an interrupted plan): redoing it", run_id
            )
        written = await _write_shards(plan, spool, stats, n, cost, store, layout)
        if dropped.rows:
            path = layout.filtered_csv(plan.attempt)
            await store.put(path, await asyncio.to_thread(dropped.path.read_bytes))
            written.add(path)
            plan.filtered_csv = path
    if ledger and plan.items:
        await register_run(store, ledger, run_id)  # before run.json: see the module doc
    try:
        await create_plan(store, plan)
    except StateConflict:
        # Another planner of this run id finished first; its run.json rules and names its
        # own attempt, so our shards are never read: remove them.
        theirs = await find_plan(store, run_id)
        if theirs is None:
            raise
        log.warning("run %s was planned concurrently by another planner; using its plan", run_id)
        for path in sorted(written):
            await store.delete(path)
        return PlanOutcome(theirs, "existing", store.uri)
    for path in sorted(set(stale) - written):  # an interrupted attempt's shards
        await store.delete(path)
    return PlanOutcome(plan, "completed" if stale else "planned", store.uri)


def check_limit(limit: int, dry_run: bool) -> int:
    """``limit`` if usable: at least 1, and only in a dry run (ConfigError otherwise)."""
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    if not dry_run:
        raise ConfigError(
            f"--limit {limit} plans only the first objects of the source, which a run must "
            "never take for the whole: add --dry-run (a preflight), or drop --limit"
        )
    return limit


class _Head:
    """The first ``limit`` items of a listing in batches (all of it when None). The listing
    is closed as soon as one more item shows it holds more (``cut_short``): S3 stops
    listing."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.cut_short = False

    def of(self, batches: AsyncIterator[list[Listed]]) -> AsyncIterator[list[Listed]]:
        return batches if self.limit is None else self._first(batches, self.limit)

    async def _first(
        self, batches: AsyncIterator[list[Listed]], limit: int
    ) -> AsyncIterator[list[Listed]]:
        taken = 0
        try:
            async for batch in batches:
                if taken + len(batch) > limit:
                    if taken < limit:
                        yield batch[: limit - taken]
                    self.cut_short = True
                    log.info("listing cut short after %d objects (the limit)", limit)
                    return
                taken += len(batch)
                yield batch
        finally:
            close = getattr(batches, "aclose", None)
            if close is not None:
                await close()


def settings_digest(settings: Settings) -> str:
    """SHA-256 of the settings that shape a plan (source, filters, plan; never secrets)."""
    shaping = {
        "source": settings.source.model_dump(mode="json"),
        "filters": settings.filters.model_dump(mode="json"),
        "plan": settings.plan.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()


async def _open_join(
    store: StateStore, ledger: str, changed: Literal["upload", "skip"], tmp: Path, dry_run: bool
) -> AntiJoin:
    """The anti-join against ledger ``ledger``, after finishing the merges of its runs that
    ended without one (not in a dry run, which writes nothing)."""
    if not dry_run:
        for done in await finish_pending(store, ledger, tmp):
            log.warning(
                "ledger %s: merged the unfinished run %s first (%d objects recorded)",
                ledger,
                done.run_id,
                done.recorded,
            )
    _, view = await Ledger(store, ledger).fetch(tmp)
    return AntiJoin(view, tmp, changed=changed)


async def _spool_listing(
    batches: AsyncIterator[list[Listed]],
    item_filter: ItemFilter | None,
    spool: Path,
    cost: Cost,
    dropped: FilteredWriter,
    join: AntiJoin | None = None,
) -> tuple[SpoolStats, Counter[str], int]:
    """Pass 1: the filtered listing into the spool (less what the ledger holds as sent),
    each dropped item into ``dropped``; what was kept, what was dropped (counts by
    reason), and how many objects were listed.

    The hot loop of planning: a plain row (a tuple, :data:`~ingest.items.PlainRow`) is
    filtered and joined by its fields, and becomes an Item only when it is spooled or
    dropped (with a ledger, ~1% of a recurring import's rows)."""
    writer = SpoolWriter(spool, cost.per_item, cost.allowance)
    filtered: Counter[str] = Counter()
    seen = 0
    planned = join.planned if join is not None else frozenset()
    try:
        async for batch in batches:
            before, seen = seen, seen + len(batch)
            if seen // _PROGRESS_EVERY != before // _PROGRESS_EVERY:
                log.info("listed %d objects", seen // _PROGRESS_EVERY * _PROGRESS_EVERY)
            reasons = item_filter.reasons(batch) if item_filter is not None else None
            if reasons is not None:  # some row is filtered out
                kept: list[Listed] = []
                for row, why in zip(batch, reasons, strict=True):
                    if why is None:
                        kept.append(row)
                    else:
                        filtered[why] += 1
                        dropped.add(item_of(row), why)
                batch = kept
            for row in batch if join is None else join.add_batch(batch):
                writer.add(item_of(row))
        if join is not None:
            for item, status in join.deferred():
                if status in planned:
                    writer.add(item)
    finally:
        writer.close()
        dropped.close()
    return writer.stats, filtered, seen


async def _ask_quota(
    quota_check: QuotaCheck | None, count: int, settings: Settings
) -> dict[str, Any] | None:
    """The quota answer for ``count`` files; FatalError when the API says no."""
    if quota_check is None or count == 0:
        return None
    answer = await quota_check(count)
    if not answer.can_proceed and not settings.plan.ignore_quota:
        said = answer.message or f"only {answer.available} uploads are available"
        raise FatalError(
            f"quota-check refused {count} files: {said} "
            "(raise the plan's limit, filter fewer files, or plan with --ignore-quota)"
        )
    return quota_to_json(answer)


async def _write_shards(
    plan: RunPlan,
    spool: Path,
    stats: SpoolStats,
    n: int,
    cost: Cost,
    store: StateStore | None,
    layout: RunLayout,
) -> set[str]:
    """Pass 2: build each shard (in a thread) and store it; fills the plan's shard lists."""
    total_cost = stats.bytes + stats.items * cost.per_item
    bigs = await asyncio.to_thread(_find_bigs, spool, stats, n, total_cost, cost)
    shards = _build_shards(spool, n, total_cost, bigs, cost)
    written: set[str] = set()
    while (shard := await asyncio.to_thread(next, shards, None)) is not None:
        index, data, count, nbytes = shard
        if store is not None:
            path = layout.shard(index, plan.attempt)
            etag = await store.put(path, data)
            written.add(path)
        else:
            etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        plan.shard_items.append(count)
        plan.shard_bytes.append(nbytes)
        plan.shard_etags.append(etag)
    return written


def _find_bigs(
    spool: Path, stats: SpoolStats, n: int, total_cost: float, cost: Cost
) -> dict[int, tuple[int, bytes]]:
    """Items costing more than a mean shard, by spool position (fewer than n of them)."""
    if n == 0 or stats.max_cost <= total_cost / n:
        return {}  # the usual case: no extra read of the spool
    threshold = total_cost / n
    return {
        i: (size, line)
        for i, (size, line) in enumerate(read_spool(spool))
        if cost.of(size) > threshold
    }


def _build_shards(
    spool: Path, n: int, total_cost: float, bigs: dict[int, tuple[int, bytes]], cost: Cost
) -> Iterator[tuple[int, bytes, int, int]]:
    """(index, gzip bytes, items, bytes) of shards 0..n-1; a big item opens its shard.

    The hot loop of pass 2, so :meth:`Cutter.shard_of` is inlined here (same arithmetic:
    an item goes where its cost midpoint falls); the balance tests pin both to agree.
    """
    if n == 0:
        return
    big_list = list(bigs.values())
    cutter = Cutter(total_cost, [cost.of(size) for size, _ in big_list], n)
    ends, last, per_item = cutter.ends, n - 1, cost.per_item
    current, done = 0, 0.0
    shard = _ShardBuffer(big_list[0] if big_list else None)
    end = ends[0]
    with gzip.open(spool, "rb") as lines:
        for position, line in enumerate(lines):
            tab = line.index(b"\t")
            size = int(line[:tab])
            if bigs and position in bigs:
                continue
            item_cost = size + per_item
            middle = done + item_cost / 2
            done += item_cost
            while current < last and middle >= end:
                yield current, *shard.finish()
                current += 1
                end = ends[current]
                shard = _ShardBuffer(big_list[current] if current < len(big_list) else None)
            shard.pending.append(line[tab + 1 :])
            shard.items += 1
            shard.bytes += size
            if len(shard.pending) >= 4096:
                shard.compress()
    while True:
        yield current, *shard.finish()
        current += 1
        if current == n:
            return
        shard = _ShardBuffer(big_list[current] if current < len(big_list) else None)


class _ShardBuffer:
    """One shard being written: compressed as it grows, so it costs its gzip size."""

    def __init__(self, big: tuple[int, bytes] | None) -> None:
        self._zip = shard_compressor()
        self._parts: list[bytes] = []
        self.pending: list[bytes] = []
        self.items = 0
        self.bytes = 0
        if big is not None:  # a big item is the shard's first (ordinal 0)
            self.pending.append(big[1])
            self.items, self.bytes = 1, big[0]

    def compress(self) -> None:
        self._parts.append(self._zip.compress(b"".join(self.pending)))
        self.pending.clear()

    def finish(self) -> tuple[bytes, int, int]:
        self.compress()
        self._parts.append(self._zip.flush())
        return b"".join(self._parts), self.items, self.bytes


async def plan_source(
    source_uri: str,
    settings: Settings,
    store: StateStore | None,
    *,
    run_id: str | None = None,
    dry_run: bool = False,
    items: AsyncIterator[Item] | None = None,
    limit: int | None = None,
) -> PlanOutcome:
    """Open the source, filters and API client, and plan into ``store``.

    ``items`` replaces the source's listing (a retry of a report's failed rows); the
    source URI is still recorded, since workers read the objects from it. ``limit``: see
    :func:`make_plan`.
    """
    if limit is not None:
        check_limit(limit, dry_run)  # before the source is opened
    from ingest.sources import Filter, absolute_uri, open_source, problems_of

    source_uri = absolute_uri(source_uri)
    item_filter = Filter.from_settings(settings.filters)
    source = open_source(source_uri, settings.source, need_times=item_filter.needs_last_modified)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(source)
        quota_check: QuotaCheck | None = None
        if settings.api.key is not None:
            from ingest.api.client import AionClient

            client = await stack.enter_async_context(AionClient(settings.api))
            quota_check = client.quota_check
        elif not (settings.plan.ignore_quota or dry_run):
            raise ConfigError(
                "no API key for quota-check: set AIONVISION_API_KEY, or plan with --ignore-quota"
            )
        return await make_plan(
            items,
            batches=source.batches() if items is None else None,
            settings=settings,
            source_uri=source_uri,
            store=store,
            run_id=run_id,
            item_filter=item_filter,
            filters_description=item_filter.describe(),
            quota_check=quota_check,
            skipped_records=lambda: problems_of(source).count,
            dry_run=dry_run,
            limit=limit,
        )
