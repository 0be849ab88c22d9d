"""Intent records: what this run sent, so a re-send's "skipped" is told apart (issue 13.1).

(Not the stream-batch ``intent`` field of the API: here an *intent* is "about to send".)

The problem. A worker killed after the server stored its uploads but before its checkpoint
(or a proxy that drops the answer after the server committed) re-sends those items; with
``skip_duplicates`` the API answers ``skipped`` with ``skipped_existing_image_id``. That
answer alone cannot tell *our own earlier upload* from a *real duplicate* (the same bytes
were on the server before, or another item of the run carries them): both say "I hold it,
here is its id".

What we record. Before each upload request (one stream-batch, one stream, one presigned
flow) the worker writes one small :class:`~ingest.state.records.IntentRecord` with the
shard ordinals it carries and the time (``intents/<index>/<worker>-<seq>.json``): one store
write per request, never per file. A record is deleted once a saved checkpoint covers all
its ordinals, so only the requests of the last flush interval (and those in flight) have
one: the state does not grow with the run. A restarted worker reads the records its
predecessors left (:meth:`IntentLog.load`): for each ordinal, how many requests carried it
and when it was first sent (:class:`Prior`).

How a "skipped" answer is judged (:meth:`IntentLog.settle`). Only answers for an item this
run may already have stored are questioned: an item with a :class:`Prior`, or whose request
took more than one HTTP attempt (an earlier attempt of the same request may have committed
before its answer was lost), or that a batch sent again after a broken body. For those, the
existing ids are looked up with ``GET /user-files?ids=...`` (one request for up to 100 ids;
only after a crash or a lost answer, never in a run without trouble) and:

- the id is ``uploaded`` by this item when the server created it at or after this run first
  sent the item (``created_at >= first_sent - worker.clock_skew_seconds``): a file that was
  on the server before we sent anything cannot have been created by us;
- it stays ``skipped_duplicate`` when it was created earlier (a real duplicate, e.g. the
  original of ``dups/copy-of-x.png`` uploaded before the run), when it is another item's
  (the shard's stored results or this worker's recent uploads name it, or another candidate
  of this worker claimed it first: two items with the same bytes sent in the same crashed
  request are one upload and one duplicate), or when the API does not list it.

Attempts. Every outcome of an item with a :class:`Prior` counts the requests earlier
workers sent (one per intent record naming it) plus this worker's HTTP attempts: a re-send
after one crash reports 2. Retries inside an earlier worker's request are not counted (that
would cost a write per retry).

What it cannot see. (1) Clocks: ``created_at`` is the server's clock, ``first_sent`` the
worker's; ``clock_skew_seconds`` (default 5) absorbs the difference. A real duplicate whose
original reached the server less than that before our first send, *and* whose answer was
lost, would be reported ``uploaded``. (2) Another shard's item with the same bytes
uploaded while ours was in flight: each shard sees only its own results, so both may say
``uploaded`` with one id (the report then shows one image id twice). (3) A zombie's
requests written after the new worker read the records. All three need a lost answer or a
crash to meet a duplicate inside a few seconds.

Routes. stream and stream-batch answer ``skipped`` as above (inline results, the session
results of ``batch_results=fetch``); ``batch_results=accept`` reads no per-file answer at
all, so only the attempt count changes. The presigned flow is made idempotent by its key
(the re-send gets the same upload), so only the attempt count changes there too.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from ingest.api.models import ListUserFilesResponse
from ingest.state.base import RunLayout, StateStore
from ingest.state.records import Checkpoint, IntentRecord, read_intents, read_results

log = logging.getLogger(__name__)

IDS_PER_LOOKUP = 100  # GET /user-files takes up to 100 per page
_DELETES_IN_FLIGHT = 8

OURS = (
    "uploaded by an earlier attempt of this run whose answer was lost; the re-send was "
    "answered 'skipped' with this id"
)
HELD_BEFORE = "the API held this content before this run sent it"
OTHER_ITEM = "the API holds this content as another item of this run"
NOT_LISTED = "the API answered 'skipped' with an id it does not list"


class FileLookup(Protocol):
    """The one call :meth:`IntentLog.settle` makes (``AionClient`` has it)."""

    async def list_user_files(
        self, *, limit: int = 100, ids: Sequence[str] = ()
    ) -> ListUserFilesResponse: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Prior:
    """What earlier workers of this shard sent of one item."""

    attempts: int  # requests that carried it (one per intent record)
    first_sent: float  # Unix seconds, the first of them


@dataclasses.dataclass(slots=True)
class Sent:
    """One request this worker sent (its intent record), and what came back uploaded."""

    sent_at: float
    path: str
    ordinals: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Skip:
    """A "skipped" answer to judge: the item, the id the API named, since when we sent it."""

    ordinal: int
    existing_id: str | None
    since: float


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    ours: bool
    reason: str


class IntentLog:
    """One shard's intent records: write before sending, judge "skipped", forget when done."""

    def __init__(
        self,
        store: StateStore,
        layout: RunLayout,
        index: int,
        worker_id: str,
        *,
        clock_skew: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.layout = layout
        self.index = index
        self.worker_id = worker_id
        self.clock_skew = clock_skew
        self.clock = clock
        self._seq = itertools.count()
        self._prior: dict[int, Prior] = {}
        self._live: dict[str, tuple[float, tuple[int, ...]]] = {}  # path -> (sent_at, ordinals)
        # ids this worker saw uploaded, while a live record is old enough to be confused
        self._observed: collections.deque[tuple[float, str]] = collections.deque()
        self._observed_ids: collections.Counter[str] = collections.Counter()
        self._claimed: dict[str, int] = {}  # id -> the candidate ordinal that claimed it
        self._stored: dict[str, int] | None = None  # id -> ordinal, from the results parts
        self.records_written = 0
        self.lookups = 0

    # --- start ----------------------------------------------------------------------------

    async def load(self) -> int:
        """Read the records earlier workers of this shard left; returns how many."""
        found = 0
        for path, record in await read_intents(self.store, self.layout, self.index):
            if record is None:
                log.warning("intent record %s is unreadable: ignored and removed", path)
                await self.store.delete(path)
                continue
            found += 1
            self._live[path] = (record.sent_at, record.ordinals)
            for o in record.ordinals:
                p = self._prior.get(o)
                if p is None:
                    self._prior[o] = Prior(1, record.sent_at)
                else:
                    self._prior[o] = Prior(p.attempts + 1, min(p.first_sent, record.sent_at))
        if found:
            log.info(
                "shard %d: %d intent records of earlier workers (%d items sent, not all "
                "recorded): re-sends answered 'skipped' are checked against them",
                self.index,
                found,
                len(self._prior),
            )
        return found

    def prior(self, ordinal: int) -> Prior | None:
        return self._prior.get(ordinal)

    # --- sending --------------------------------------------------------------------------

    async def sent(self, route: str, ordinals: Sequence[int]) -> Sent:
        """Write the intent record of a request about to carry ``ordinals``; then send."""
        record = IntentRecord(self.worker_id, next(self._seq), self.clock(), route, tuple(ordinals))
        path = self.layout.intent(self.index, self.worker_id, record.seq)
        await self.store.create(path, record.to_bytes())
        self.records_written += 1
        self._live[path] = (record.sent_at, record.ordinals)
        return Sent(record.sent_at, path, record.ordinals)

    def since(self, sent: Sent, ordinal: int) -> float:
        """When this run first sent ``ordinal``: an earlier worker's send, else ``sent``'s."""
        p = self._prior.get(ordinal)
        return sent.sent_at if p is None else min(p.first_sent, sent.sent_at)

    def attempts(self, ordinal: int, attempts: int) -> int:
        """``attempts`` of this worker plus the requests earlier workers sent."""
        p = self._prior.get(ordinal)
        return attempts if p is None else attempts + p.attempts

    def questioned(self, ordinal: int, *, retried: bool) -> bool:
        """Whether a "skipped" answer for ``ordinal`` may be our own earlier upload."""
        return retried or ordinal in self._prior

    def observed(self, image_id: str) -> None:
        """An id this worker saw uploaded (by an answer): no other item can have made it."""
        if not self._live:
            return
        self._observed.append((self.clock(), image_id))
        self._observed_ids[image_id] += 1

    # --- judging --------------------------------------------------------------------------

    async def settle(self, skips: Sequence[Skip], lookup: FileLookup) -> dict[int, Verdict]:
        """Judge "skipped" answers that may be our own earlier uploads (module docstring)."""
        verdicts: dict[int, Verdict] = {}
        todo = [s for s in skips if s.existing_id]
        for s in skips:
            if not s.existing_id:
                verdicts[s.ordinal] = Verdict(False, NOT_LISTED)
        if not todo:
            return verdicts
        stored = await self._stored_ids() if any(s.ordinal in self._prior for s in todo) else {}
        created = await self._created({s.existing_id for s in todo if s.existing_id}, lookup)
        for s in sorted(todo, key=lambda s: (s.since, s.ordinal)):
            x = s.existing_id
            assert x is not None
            owner = self._claimed.get(x, stored.get(x, s.ordinal))
            at = created.get(x)
            if owner != s.ordinal or self._observed_ids[x]:
                verdicts[s.ordinal] = Verdict(False, OTHER_ITEM)
            elif at is None:
                verdicts[s.ordinal] = Verdict(False, NOT_LISTED)
            elif at >= s.since - self.clock_skew:
                self._claimed[x] = s.ordinal
                verdicts[s.ordinal] = Verdict(True, OURS)
            else:
                verdicts[s.ordinal] = Verdict(False, HELD_BEFORE)
        return verdicts

    async def _created(self, ids: Iterable[str], lookup: FileLookup) -> dict[str, float | None]:
        """The server's creation time of each id (None when it does not list the id)."""
        wanted = sorted(ids)
        out: dict[str, float | None] = dict.fromkeys(wanted)
        for start in range(0, len(wanted), IDS_PER_LOOKUP):
            chunk = wanted[start : start + IDS_PER_LOOKUP]
            self.lookups += 1
            page = await lookup.list_user_files(limit=IDS_PER_LOOKUP, ids=chunk)
            for f in page.files:
                if f.id in out:
                    out[f.id] = _timestamp(f.created_at)
        return out

    async def _stored_ids(self) -> dict[str, int]:
        """id -> ordinal of every stored outcome of the shard (read once, after a crash)."""
        if self._stored is None:
            results = await read_results(self.store, self.layout, self.index, damaged=[])
            self._stored = {r.image_id: o for o, r in results.items() if r.image_id}
        return self._stored

    # --- forgetting -----------------------------------------------------------------------

    async def forget(self, checkpoint: Checkpoint) -> int:
        """Delete the records whose every ordinal ``checkpoint`` (just saved) covers;
        returns how many. A delete that fails leaves the record for the next worker, which
        finds its ordinals done and deletes it."""
        done = [
            path
            for path, (_, ordinals) in self._live.items()
            if all(checkpoint.is_done(o) for o in ordinals)
        ]
        if not done:
            return 0
        gate = asyncio.Semaphore(_DELETES_IN_FLIGHT)

        async def delete(path: str) -> None:
            async with gate:
                await self.store.delete(path)
            self._live.pop(path, None)

        outcome = await asyncio.gather(*(delete(p) for p in done), return_exceptions=True)
        for path, error in zip(done, outcome, strict=True):
            if isinstance(error, Exception):
                log.warning("could not delete intent record %s (%s): kept", path, error)
            elif isinstance(error, BaseException):
                raise error
        self._prune()
        return sum(1 for e in outcome if e is None)

    def _prune(self) -> None:
        """Drop what no live record can be confused with any more."""
        if not self._live:
            self._observed.clear()
            self._observed_ids.clear()
            self._claimed.clear()
            self._stored = None
            self._prior.clear()
            return
        horizon = min(at for at, _ in self._live.values()) - self.clock_skew
        while self._observed and self._observed[0][0] < horizon:
            _, image_id = self._observed.popleft()
            self._observed_ids[image_id] -= 1
            if self._observed_ids[image_id] <= 0:
                del self._observed_ids[image_id]


def _timestamp(text: str) -> float | None:
    """Unix seconds of an ISO 8601 time (no zone: UTC); None when it cannot be read."""
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()
