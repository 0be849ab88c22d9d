"""Image ids in bulk: every pending upload of a run resolved from ``GET /user-files`` pages.

With ``worker.batch_results=list`` a stream-batch of more than 5 files costs one request:
its answer settles accepted versus rejected, and each accepted file is recorded
``uploaded`` with a :class:`~ingest.items.PendingId` (session, name sent, wall-clock window
of the request). After the workers, :func:`resolve_run` lists the files the API created
since the run's first pending upload, oldest first, 100 a request (the API's page limit),
and matches them to the pending uploads. That is the floor the API allows for per-file
ids: about one request per batch plus one per 100 files (session results would cost one
per batch: with 20 files a batch, 0.83 of the budget goes to uploads instead of 0.50).

Matching is by name, size and time, and only where it cannot be wrong by our own doing:
a listed file matches a pending upload when it has the name and size sent, was created
inside the upload's request window (widened by ``slop`` seconds for clock skew), and is
the only such file for that upload *and* that upload is the only one it could be. Files
that existed before (same names, same sizes) fall outside the window; two uploads of the
run that could claim the same listed file (same name and size, overlapping windows) are
both left to the fallback. An upload with no match at all (typically a duplicate the API
skipped: it created no file) asks its session's results, one request per such session,
which tell uploaded from skipped and give the existing file's id. What the matching
cannot see: another client uploading a file of the same name and size within the same
seconds while our file was skipped as a duplicate; the README says so.

The resolved outcomes go to one new results part per shard (the latest part wins), so
the report reads them like any other outcome.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Protocol

from ingest.api.models import ListUserFilesResponse, UploadSessionResultItem
from ingest.errors import StateConflict
from ingest.items import FailureCode, ItemResult, Outcome
from ingest.settings import Settings
from ingest.state.base import RunLayout, StateStore
from ingest.state.records import encode_part, list_parts, read_results
from ingest.worker.pacing import Limiter

log = logging.getLogger(__name__)

PAGE = 100  # GET /user-files: limit <= 100
# Seconds either side of a request's window: the skew between this machine's clock and the
# API's (NTP-synced hosts: milliseconds). Wider is safer against skew, narrower against a
# look-alike made just before (see the module's docstring).
DEFAULT_SLOP = 2.0
UNRESOLVED = "uploaded; image id not found in the listing nor the session's results"


class IdsApi(Protocol):
    """The two calls the resolver makes (``AionClient`` satisfies it)."""

    async def list_user_files(
        self,
        *,
        limit: int,
        offset: int,
        sort_by: str,
        sort_order: str,
        date_from: str | None,
    ) -> ListUserFilesResponse: ...

    def iter_session_results(
        self, session_id: str, *, page_size: int
    ) -> AsyncIterator[UploadSessionResultItem]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Listed:
    """One file as the listing shows it."""

    id: str
    filename: str | None
    size: int
    created: float  # epoch seconds


Ref = tuple[int, int]
"""(shard, ordinal) of one pending upload."""


@dataclasses.dataclass(frozen=True, slots=True)
class Wanted:
    ref: Ref
    filename: str
    size: int
    sent: float
    answered: float


def match(wanted: Sequence[Wanted], listed: Iterable[Listed], slop: float) -> dict[Ref, str]:
    """Image id by upload, for the uploads with exactly one candidate that no other upload
    could also claim (see the module's docstring)."""
    by_name: dict[tuple[str, int], list[Listed]] = defaultdict(list)
    for f in listed:
        if f.filename is not None:
            by_name[(f.filename, f.size)].append(f)
    candidates: dict[Ref, list[str]] = {}
    claims: dict[str, int] = defaultdict(int)
    for w in wanted:
        ids = [
            f.id
            for f in by_name.get((w.filename, w.size), ())
            if w.sent - slop <= f.created <= w.answered + slop
        ]
        candidates[w.ref] = ids
        for image_id in ids:
            claims[image_id] += 1
    return {ref: ids[0] for ref, ids in candidates.items() if len(ids) == 1 and claims[ids[0]] == 1}


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 time from the API (no zone means UTC)."""
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass
class ResolveStats:
    """What resolving cost and found: read by the coordinator's log and the benchmarks."""

    pending: int = 0
    matched: int = 0
    from_sessions: int = 0
    unresolved: int = 0
    list_requests: int = 0
    session_requests: int = 0

    def summary(self) -> str:
        return (
            f"image ids: {self.pending} pending, {self.matched} from {self.list_requests} "
            f"listing pages, {self.from_sessions} from {self.session_requests} session "
            f"results, {self.unresolved} not found"
        )


async def listed_since(
    client: IdsApi, since: float, until: float, stats: ResolveStats
) -> list[Listed]:
    """Files created from ``since`` on, oldest first, until one created after ``until``."""
    out: list[Listed] = []
    offset = 0
    while True:
        page = await client.list_user_files(
            limit=PAGE, offset=offset, sort_by="created_at", sort_order="asc", date_from=iso(since)
        )
        stats.list_requests += 1
        for f in page.files:
            out.append(Listed(f.id, f.filename, f.size_bytes, parse_time(f.created_at)))
        offset += len(page.files)
        if not page.has_more or not page.files or out[-1].created > until:
            return out


async def from_sessions(
    client: IdsApi, wanted: Sequence[Wanted], sessions: dict[Ref, str], stats: ResolveStats
) -> dict[Ref, ItemResult]:
    """Outcomes of uploads the listing did not settle, from their sessions' results.

    A name that appears twice in one session cannot be told apart: left unresolved."""
    out: dict[Ref, ItemResult] = {}
    by_session: dict[str, list[Wanted]] = defaultdict(list)
    for w in wanted:
        by_session[sessions[w.ref]].append(w)
    for session_id, ws in by_session.items():
        stats.session_requests += 1
        results = [r async for r in client.iter_session_results(session_id, page_size=PAGE)]
        names: dict[str, list[UploadSessionResultItem]] = defaultdict(list)
        for r in results:
            names[r.filename].append(r)
        sent_names: dict[str, int] = defaultdict(int)
        for w in ws:
            sent_names[w.filename] += 1
        for w in ws:
            rs = names.get(w.filename, [])
            if len(rs) != 1 or sent_names[w.filename] != 1:
                continue
            r = rs[0]
            if r.status == "skipped":
                outcome = Outcome.SKIPPED_DUPLICATE
            elif r.status == "failed":
                outcome = Outcome.FAILED
            else:
                outcome = Outcome.UPLOADED
            out[w.ref] = ItemResult(
                w.ref[1],
                "",
                w.size,
                outcome,
                image_id=r.image_id,
                reason=r.error_message if outcome is Outcome.FAILED else None,
                code=FailureCode.PROCESSING_FAILED if outcome is Outcome.FAILED else None,
            )
    return out


@dataclasses.dataclass
class PendingUploads:
    """A run's uploads whose image id is pending, with their shards' latest results."""

    run_id: str
    results: dict[int, dict[int, ItemResult]] = dataclasses.field(default_factory=dict)
    wanted: list[Wanted] = dataclasses.field(default_factory=list)
    sessions: dict[Ref, str] = dataclasses.field(default_factory=dict)


async def pending_uploads(store: StateStore, run_id: str, shards: int) -> PendingUploads:
    """Every upload of run ``run_id`` still waiting for its image id (reads results only).

    A damaged results part is passed over: its items count as never done (``resume`` redoes
    them) and the report names it."""
    layout = RunLayout(run_id)
    out = PendingUploads(run_id)
    for index in range(shards):
        shard = await read_results(store, layout, index, damaged=[])
        for r in shard.values():
            if r.outcome is Outcome.UPLOADED and r.pending is not None:
                out.results.setdefault(index, {})[r.ordinal] = r
                ref = (index, r.ordinal)
                p = r.pending
                out.wanted.append(Wanted(ref, p.filename, r.size, p.sent, p.answered))
                out.sessions[ref] = p.session_id
    return out


async def resolve_run(
    store: StateStore,
    run_id: str,
    shards: int,
    client: IdsApi,
    *,
    slop: float = DEFAULT_SLOP,
) -> ResolveStats:
    """Resolve every pending image id of run ``run_id``; write one results part per shard
    that had any. Costs nothing when no upload is pending (modes fetch/accept, or a rerun)."""
    return await resolve(store, await pending_uploads(store, run_id, shards), client, slop=slop)


async def resolve(
    store: StateStore, pending: PendingUploads, client: IdsApi, *, slop: float = DEFAULT_SLOP
) -> ResolveStats:
    """:func:`resolve_run` once the pending uploads are read."""
    layout = RunLayout(pending.run_id)
    stats = ResolveStats()
    results, wanted, sessions = pending.results, pending.wanted, pending.sessions
    stats.pending = len(wanted)
    if not wanted:
        return stats
    since = min(w.sent for w in wanted) - slop
    until = max(w.answered for w in wanted) + slop
    ids = match(wanted, await listed_since(client, since, until, stats), slop)
    stats.matched = len(ids)
    rest = [w for w in wanted if w.ref not in ids]
    settled = await from_sessions(client, rest, sessions, stats) if rest else {}
    stats.from_sessions = len(settled)
    for w in wanted:
        r = results[w.ref[0]][w.ref[1]]
        if w.ref in ids:
            new = dataclasses.replace(r, image_id=ids[w.ref], reason=None, pending=None)
        elif w.ref in settled:
            s = settled[w.ref]
            new = dataclasses.replace(
                r,
                outcome=s.outcome,
                image_id=s.image_id,
                reason=s.reason,
                code=s.code,
                pending=None,
            )
        else:
            stats.unresolved += 1
            new = dataclasses.replace(r, reason=UNRESOLVED, pending=None)
        results[w.ref[0]][w.ref[1]] = new
    for index, shard in results.items():
        await _append_part(store, layout, index, list(shard.values()))
    log.info("run %s: %s", pending.run_id, stats.summary())
    return stats


async def _append_part(
    store: StateStore, layout: RunLayout, index: int, results: list[ItemResult]
) -> None:
    """One more results part after the shard's last (the latest part wins)."""
    data = encode_part(sorted(results, key=lambda r: r.ordinal))
    for _ in range(10):
        parts = await list_parts(store, layout, index)
        n = parts[-1][0] + 1 if parts else 0
        try:
            await store.create(layout.results_part(index, n), data)
            return
        except StateConflict:
            continue
    raise StateConflict(f"shard {index}: could not add the resolved image ids' results part")


async def resolve_pending_ids(
    store: StateStore, run_id: str, shards: int, settings: Settings
) -> ResolveStats:
    """:func:`resolve_run` with the run's API key at the whole run's budget (the workers
    are done: the key is this process's alone). The run's report step calls it before the
    report; it opens no client and costs nothing unless ``worker.batch_results`` was
    ``list`` (only that mode leaves ids pending)."""
    pending = await pending_uploads(store, run_id, shards)
    if not pending.wanted:
        return ResolveStats()
    from ingest.api.client import AionClient

    limiter = Limiter(settings.requests_per_minute() / 60.0)
    async with AionClient(settings.api, pacer=limiter.request) as client:
        return await resolve(store, pending, client)
