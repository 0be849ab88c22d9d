"""A finished run's outcomes into its import's ledger, exactly once.

What is recorded: every item whose outcome is ``uploaded`` or ``skipped_duplicate`` (the
API already had it; its answer carries the image id). ``failed`` items are not, so the
next run plans them again. The entry's bucket, ETag and version id come from the shard
(what the plan saw), the image id from the outcome.

Exactly once, across crashes: the planner registers the run as *pending* in the ledger
(``ledger/<name>/pending/<run_id>.json``); the merge adds the run's segment to the
manifest by CAS (the manifest lists merged runs, so a merge redone finds its run there and
adds nothing), then writes the marker ``runs/<run_id>/ledger.json`` and drops the pending
record. A crash anywhere in between is repaired by :func:`finish_pending`, which the next
command touching the import calls first: at worst a segment becomes an orphan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from ingest.errors import ConfigError, StateConflict
from ingest.items import Outcome
from ingest.ledger.entries import Entry
from ingest.ledger.manifest import Manifest, RunRecord
from ingest.ledger.sorting import ExternalSorter
from ingest.ledger.store import Ledger, iso
from ingest.state.base import RunLayout, StateStore
from ingest.state.records import find_plan, read_results, read_shard

log = logging.getLogger(__name__)

RECORDED = frozenset({Outcome.UPLOADED, Outcome.SKIPPED_DUPLICATE})


def marker_path(run_id: str) -> str:
    """Present once run ``run_id``'s outcomes are in its ledger."""
    return f"{RunLayout(run_id).root}/ledger.json"


def pending_path(name: str, run_id: str) -> str:
    return f"ledger/{name}/pending/{run_id}.json"


@dataclasses.dataclass(frozen=True)
class MergeResult:
    run_id: str
    recorded: int  # objects of the run now in the ledger
    already: bool  # the run was merged before (a redone merge): nothing written


async def register_run(store: StateStore, name: str, run_id: str) -> None:
    """Note that run ``run_id`` of import ``name`` will need merging (the planner's part)."""
    ledger = Ledger(store, name)
    doc = json.dumps({"run": run_id, "ledger": ledger.name}).encode()
    with contextlib.suppress(StateConflict):  # registered already: a plan redone
        await store.create(pending_path(name, run_id), doc)


async def merge_run(
    store: StateStore, name: str, run_id: str, workdir: Path, *, again: bool = False
) -> MergeResult:
    """Merge run ``run_id``'s recorded outcomes into ledger ``name``; idempotent.

    ``again``: the run was merged before and has gone on since (``resume``): record its
    outcomes once more, as merge ``RUN+n`` (what the first merge recorded is recorded
    again, unchanged; a compaction drops the copies).
    """
    ledger = Ledger(store, name)
    manifest, _ = await ledger.read()
    merge_id = run_id
    if again:
        merge_id = f"{run_id}+{sum(r.run_id.split('+')[0] == run_id for r in manifest.runs)}"
    else:
        marker = await store.get(marker_path(run_id))
        if marker is not None:
            await store.delete(pending_path(name, run_id))
            return MergeResult(run_id, int(json.loads(marker.data).get("recorded", 0)), True)
        if manifest.has_run(run_id):  # merged, then a crash before the marker
            recorded = next(r.recorded for r in manifest.runs if r.run_id == run_id)
            await _finish(store, name, run_id, recorded)
            return MergeResult(run_id, recorded, True)
    sorter = ExternalSorter(workdir)
    await _collect(store, run_id, sorter, iso(dt.datetime.now(dt.UTC)))
    added = await ledger.add_run(merge_id, _last_per_key(sorter.sorted()))
    manifest, _ = await ledger.read()  # the run's record, whoever wrote it
    recorded = next((r.recorded for r in manifest.runs if r.run_id == merge_id), 0)
    await ledger.compact(workdir)
    await ledger.clean()
    await _finish(store, name, run_id, recorded)
    return MergeResult(run_id, recorded, not added)


async def finish_pending(store: StateStore, name: str, workdir: Path) -> list[MergeResult]:
    """Merge every run of import ``name`` still pending (its coordinator died, or crashed
    in the merge); call before planning the next run of the import. A pending run whose
    plan never completed (no run.json) is forgotten."""
    done = []
    prefix = f"ledger/{Ledger(store, name).name}/pending/"
    async for path in store.list(prefix):
        run_id = path.removeprefix(prefix).removesuffix(".json")
        if await find_plan(store, run_id) is None:  # its plan never completed
            log.warning("ledger %s: run %s was never planned; forgetting it", name, run_id)
            await store.delete(path)
            continue
        log.warning(
            "ledger %s: run %s ended without its ledger merge; finishing it first", name, run_id
        )
        done.append(await merge_run(store, name, run_id, workdir))
    return done


async def _finish(store: StateStore, name: str, run_id: str, recorded: int) -> None:
    doc = {"ledger": name, "recorded": recorded, "at": iso(dt.datetime.now(dt.UTC))}
    await store.put(marker_path(run_id), json.dumps(doc).encode())
    await store.delete(pending_path(name, run_id))


async def _collect(store: StateStore, run_id: str, sorter: ExternalSorter, now: str) -> None:
    """Every recorded outcome of the run into ``sorter`` as (sort key, segment line)."""
    layout = RunLayout(run_id)
    plan = await find_plan(store, run_id)  # names its plan attempt's shards
    if plan is None or not plan.shards:
        raise ConfigError(
            f"run {run_id!r} has no plan in {store.uri}; check the run id and --state"
        )
    for index in range(plan.shards):
        items = await read_shard(store, plan, index)
        for ordinal, result in (await read_results(store, layout, index)).items():
            if result.outcome not in RECORDED or ordinal >= len(items):
                continue
            item = items[ordinal]
            if item.key != result.key:
                continue  # results of another plan: never record a wrong image id
            entry = Entry(
                item.bucket,
                item.key,
                item.size,
                item.etag or None,
                item.version_id,
                result.image_id,
                run_id,
                now,
            )
            sorter.add(entry.sort_key, entry.to_line())


def _last_per_key(pairs: Iterator[tuple[str, str]]) -> Iterator[str]:
    """One line per key: the last of equal keys (a key listed twice in one run)."""
    prev_key: str | None = None
    prev_line = ""
    for key, line in pairs:
        if prev_key is not None and key != prev_key:
            yield prev_line
        prev_key, prev_line = key, line
    if prev_key is not None:
        yield prev_line


async def rebuild(
    store: StateStore, name: str, run_ids: list[str], workdir: Path
) -> tuple[Manifest, int]:
    """Make ledger ``name`` exactly what runs ``run_ids`` recorded (later runs win for a
    key two of them sent), replacing what it held; the new manifest and object count."""
    ledger = Ledger(store, name)
    sorter = ExternalSorter(workdir)
    now = iso(dt.datetime.now(dt.UTC))
    before = sorter.count
    counts = []
    for run_id in run_ids:
        await _collect(store, run_id, sorter, now)
        counts.append(sorter.count - before)
        before = sorter.count
    runs = tuple(RunRecord(r, now, n) for r, n in zip(run_ids, counts, strict=True))
    manifest = await ledger.replace_all(_last_per_key(sorter.sorted()), runs)
    for run_id, n in zip(run_ids, counts, strict=True):
        await _finish(store, name, run_id, n)
    return manifest, sum(s.entries for s in manifest.segments)
