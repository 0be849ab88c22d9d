"""A named ledger in the state store: segments, manifest, compaction, clean-up.

Layout under the store's root::

    ledger/<name>/manifest.json                     the list of live segments, CAS-replaced
    ledger/<name>/segments/<id>/page-00000.gz       one segment: sorted pages of lines

A change is always: write new immutable segments first, then swap the manifest with
compare-and-swap (create-if-absent for the first one). Two writers at once: one swap wins,
the other re-reads the manifest and tries again, so nothing recorded is lost. A crash
before the swap leaves a segment nobody names (an orphan); one after it leaves nothing
to redo. Orphans and segments a compaction replaced are deleted by :meth:`Ledger.clean`
once they are older than a grace period, so a reader that fetched the previous manifest
can still read its segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from ingest.errors import FatalError, RetryableError, StateConflict
from ingest.ledger.entries import check_name
from ingest.ledger.lines import gzip_lines
from ingest.ledger.manifest import Manifest, Retired, RunRecord, Segment
from ingest.ledger.view import LedgerView
from ingest.state.base import StateStore

log = logging.getLogger(__name__)

PAGE_ENTRIES = 65_536  # ~2 MiB compressed, ~10 MiB of text: what one get() holds
MAX_SEGMENTS = 8
GRACE = dt.timedelta(hours=1)
_ATTEMPTS = 20
_ID_TIME = "%Y%m%dT%H%M%SZ"

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="seconds")


def compaction_range(entries: list[int], max_segments: int) -> tuple[int, int] | None:
    """Which segments to merge, ``[start, end)``, or None when there are few enough.

    Size-tiered: merge the newest segments from the first one (oldest first) that is not
    much bigger than all those after it together, so a big old segment is rewritten only
    once the new ones add up to half of it: each entry is rewritten O(log n) times.
    """
    n = len(entries)
    if n <= max_segments:
        return None
    for i in range(n - 1):
        if entries[i] <= 2 * sum(entries[i + 1 :]):
            return i, n
    return max_segments - 1, n  # back to max_segments, newest first


class Ledger:
    """One named ledger in ``store``. Cheap to make; every method reads the manifest anew."""

    def __init__(
        self,
        store: StateStore,
        name: str,
        *,
        page_entries: int = PAGE_ENTRIES,
        max_segments: int = MAX_SEGMENTS,
        grace: dt.timedelta = GRACE,
        clock: Clock = _utcnow,
    ) -> None:
        self.store = store
        self.name = check_name(name)
        self.root = f"ledger/{name}"
        self.manifest_path = f"{self.root}/manifest.json"
        self._page_entries = page_entries
        self._max_segments = max_segments
        self._grace = grace
        self._clock = clock

    def page_path(self, segment_id: str, page: int) -> str:
        return f"{self.root}/segments/{segment_id}/page-{page:05d}.gz"

    async def read(self) -> tuple[Manifest, str | None]:
        """The manifest and its ETag (None: the ledger does not exist yet, empty)."""
        blob = await self.store.get(self.manifest_path)
        if blob is None:
            return Manifest(self.name), None
        where = f"{self.store.uri} {self.manifest_path}"
        try:
            return Manifest.decode(blob.data, where), blob.etag
        except ValueError as exc:
            raise FatalError(
                f"{exc}; it was written by another version or damaged (rebuild it with "
                f"'aion-ingest ledger {self.name} --rebuild-from RUN_ID...')"
            ) from None

    async def _swap(self, new: Manifest, etag: str | None) -> None:
        """CAS the manifest; StateConflict when someone else changed it first."""
        if etag is None:
            await self.store.create(self.manifest_path, new.encode())
        else:
            await self.store.replace(self.manifest_path, new.encode(), etag)

    async def write_segment(self, lines: Iterator[str]) -> Segment:
        """Store sorted segment ``lines`` (newest-wins already applied) as a new segment.

        Not yet in the manifest: an orphan until a swap names it.
        """
        segment_id = f"{self._clock().astimezone(dt.UTC):{_ID_TIME}}-{secrets.token_hex(4)}"
        pages = entries = 0
        while True:
            page = await asyncio.to_thread(_next_page, lines, self._page_entries)
            if page is None:
                break
            data, count = page
            await self.store.put(self.page_path(segment_id, pages), data)
            pages += 1
            entries += count
        return Segment(segment_id, pages, entries)

    async def delete_segment(self, segment: Segment) -> None:
        for page in range(segment.pages):
            await self.store.delete(self.page_path(segment.id, page))

    async def add_run(self, run_id: str, lines: Iterator[str]) -> bool:
        """Add run ``run_id``'s sorted ``lines`` as a new segment; False when the ledger
        already holds that run (a merge redone: nothing written)."""
        manifest, etag = await self.read()
        if manifest.has_run(run_id):
            return False
        segment = await self.write_segment(lines)
        record = RunRecord(run_id, iso(self._clock()), segment.entries)
        for _ in range(_ATTEMPTS):
            if manifest.has_run(run_id):  # another merge of the same run won the race
                await self.delete_segment(segment)
                return False
            added = (segment,) if segment.entries else ()
            new = Manifest(
                self.name,
                segments=manifest.segments + added,
                runs=(*manifest.runs, record),
                retired=manifest.retired,
            )
            try:
                await self._swap(new, etag)
            except StateConflict:
                manifest, etag = await self.read()
                continue
            log.info("ledger %s: run %s recorded %d objects", self.name, run_id, segment.entries)
            return True
        raise self._busy()

    async def replace_all(self, lines: Iterator[str], runs: tuple[RunRecord, ...]) -> Manifest:
        """Make the ledger exactly ``lines`` (one new segment) and ``runs``: a rebuild."""
        segment = await self.write_segment(lines)
        for _ in range(_ATTEMPTS):
            manifest, etag = await self.read()
            now = iso(self._clock())
            new = Manifest(
                self.name,
                segments=(segment,) if segment.entries else (),
                runs=runs,
                retired=manifest.retired + tuple(Retired(s.id, now) for s in manifest.segments),
            )
            try:
                await self._swap(new, etag)
            except StateConflict:
                continue
            return new
        raise self._busy()

    async def fetch(self, workdir: Path) -> tuple[Manifest, LedgerView]:
        """The manifest and local copies of its segments (one file each, in ``workdir``).

        A page missing means the segments were replaced and cleaned while we read (a
        reader slower than the grace period): read the new manifest and start again.
        """
        seen: str | None = None
        for _ in range(_ATTEMPTS):
            manifest, etag = await self.read()
            files = []
            for i, segment in enumerate(manifest.segments):
                path = workdir / f"segment-{i:04d}.gz"
                if not await self._download(segment, path):
                    missing = segment
                    break
                files.append(path)
            else:
                return manifest, LedgerView(files)
            if etag == seen:  # the same manifest twice, a page still missing: damaged
                raise FatalError(
                    f"ledger {self.name!r} in {self.store.uri}: a page of segment "
                    f"{missing.id} is missing; rebuild the ledger with 'aion-ingest ledger "
                    f"{self.name} --rebuild-from RUN_ID...'"
                )
            seen = etag
            log.info("ledger %s changed while it was read; reading it again", self.name)
        raise self._busy()

    async def _download(self, segment: Segment, path: Path) -> bool:
        with open(path, "wb") as f:  # noqa: ASYNC230 - local scratch file, written in a thread
            for page in range(segment.pages):
                blob = await self.store.get(self.page_path(segment.id, page))
                if blob is None:
                    return False
                await asyncio.to_thread(f.write, blob.data)
        return True

    async def compact(self, workdir: Path, *, everything: bool = False) -> bool:
        """Merge segments when there are too many (``everything``: into one); True when it
        did. Two compactions at once: one swap wins, the other's segment becomes an orphan
        and it looks again at the new manifest."""
        for _ in range(_ATTEMPTS):
            manifest, etag = await self.read()
            counts = [s.entries for s in manifest.segments]
            if everything:
                span = (0, len(counts)) if len(counts) > 1 else None
            else:
                span = compaction_range(counts, self._max_segments)
            if span is None:
                return False
            start, end = span
            chosen = manifest.segments[start:end]
            files = []
            for i, segment in enumerate(chosen):
                path = workdir / f"compact-{segment.id}-{i}.gz"
                if not await self._download(segment, path):
                    break
                files.append(path)
            else:
                merged = LedgerView(files).lines()
                segment = await self.write_segment(line for _, line in merged)
                now = iso(self._clock())
                new = Manifest(
                    self.name,
                    segments=(*manifest.segments[:start], segment, *manifest.segments[end:]),
                    runs=manifest.runs,
                    retired=manifest.retired + tuple(Retired(s.id, now) for s in chosen),
                )
                try:
                    await self._swap(new, etag)
                except StateConflict:
                    await self.delete_segment(segment)
                    continue
                finally:
                    for path in files:
                        path.unlink(missing_ok=True)
                log.info(
                    "ledger %s: merged %d segments into one of %d entries",
                    self.name,
                    len(chosen),
                    segment.entries,
                )
                return True
        raise self._busy()

    async def clean(self) -> int:
        """Delete segments no manifest names, once older than the grace period (orphans
        of crashed merges, segments compactions replaced); how many segments went."""
        manifest, etag = await self.read()
        cutoff = self._clock() - self._grace
        retired = {r.id: dt.datetime.fromisoformat(r.at) for r in manifest.retired}
        pages: dict[str, list[str]] = {}
        async for path in self.store.list(f"{self.root}/segments/"):
            segment_id = path.removeprefix(f"{self.root}/segments/").split("/", 1)[0]
            pages.setdefault(segment_id, []).append(path)
        gone = set()
        for segment_id, paths in pages.items():
            if segment_id in manifest.live_ids:
                continue
            since = retired.get(segment_id) or _id_time(segment_id)
            if since is None or since > cutoff:
                continue
            for path in paths:
                await self.store.delete(path)
            gone.add(segment_id)
        kept = tuple(r for r in manifest.retired if r.id not in gone and r.id in pages)
        if kept != manifest.retired and etag is not None:
            new = Manifest(self.name, manifest.segments, manifest.runs, kept)
            with contextlib.suppress(StateConflict):  # changed: the next clean-up forgets them
                await self._swap(new, etag)
        return len(gone)

    def _busy(self) -> RetryableError:
        return RetryableError(
            f"ledger {self.name!r} in {self.store.uri}: the manifest kept changing under "
            f"{_ATTEMPTS} attempts (many writers at once?); try again"
        )


def _next_page(lines: Iterator[str], n: int) -> tuple[bytes, int] | None:
    page = [line for _, line in zip(range(n), lines, strict=False)]
    if not page:
        return None
    return gzip_lines(page), len(page)


def _id_time(segment_id: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(segment_id.split("-", 1)[0], _ID_TIME).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
