"""Stream-batch groups: full when small files are waiting, prompt when they are not.

The run's ceiling is requests/min x files per request, so a half-empty batch wastes
budget. The batcher is therefore *pulled*: an uploader asks for a batch only when it is
ready to send (it holds a request slot), and gets the fullest group available then. While
the pace holds uploaders back, small items pile up in the inbox (bounded: back-pressure on
the reader) and every request goes out full. When items trickle in faster than the pace
allows nothing is lost either; and when they trickle in slowly, an uploader sends what
there is once no new file came for ``linger`` seconds, so latency stays bounded. The end
of the stream sends the leftovers at once.

Grouping rules (uploads-api.md): at most ``max_files`` files and ``max_bytes`` bytes per
request; files share a request only with the same tags (stream-batch tags apply to every
file); and never two files of one name in one request, because the session results that
report per-file outcomes of larger batches name files by filename only.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses

from ingest.items import Item
from ingest.worker.clock import SYSTEM_CLOCK, Clock
from ingest.worker.naming import UploadFields


@dataclasses.dataclass(frozen=True, slots=True)
class Pending:
    """One item waiting to be sent, with what will be sent with it."""

    ordinal: int
    item: Item
    fields: UploadFields


@dataclasses.dataclass
class _Group:
    items: list[Pending] = dataclasses.field(default_factory=list)
    nbytes: int = 0
    names: set[str] = dataclasses.field(default_factory=set)


_END = object()


class Batcher:
    """A bounded inbox of small items and the groups being filled from it.

    Producer: ``await put(p)`` for each item, then ``await close()``. Consumers:
    ``await next_batch()`` until it returns None (closed and empty).
    """

    def __init__(
        self,
        *,
        max_files: int,
        max_bytes: int,
        linger: float = 0.05,
        queue_size: int = 256,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if max_files < 1 or max_bytes < 1:
            raise ValueError("a batch holds at least one file and one byte")
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.linger = linger
        self.clock = clock
        self._inbox: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_size)
        self._groups: dict[str, _Group] = {}
        self._ready: collections.deque[list[Pending]] = collections.deque()
        self._ended = False
        self._lock = asyncio.Lock()
        self.batches_sent = 0
        self.files_sent = 0

    async def put(self, pending: Pending) -> None:
        if pending.item.size > self.max_bytes:
            raise ValueError(f"{pending.item.key}: too big for a batch ({pending.item.size} B)")
        await self._inbox.put(pending)

    async def close(self) -> None:
        """No more items: leftovers go out without lingering."""
        await self._inbox.put(_END)

    @property
    def waiting(self) -> int:
        """Items accepted and not yet handed out in a batch."""
        grouped = sum(len(g.items) for g in self._groups.values())
        return self._inbox.qsize() + grouped + sum(len(b) for b in self._ready)

    def _add(self, got: object) -> None:
        if got is _END:
            self._ended = True
            return
        assert isinstance(got, Pending)
        key = got.fields.batch_key
        group = self._groups.get(key)
        if group is not None and (
            got.fields.filename in group.names or group.nbytes + got.item.size > self.max_bytes
        ):
            self._ready.append(self._groups.pop(key).items)
            group = None
        if group is None:
            group = self._groups[key] = _Group()
        group.items.append(got)
        group.nbytes += got.item.size
        group.names.add(got.fields.filename)
        if len(group.items) >= self.max_files:
            self._ready.append(self._groups.pop(key).items)

    def _drain(self) -> None:
        while not self._ended:
            try:
                self._add(self._inbox.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def _get(self, wait: float | None) -> bool:
        """Take one inbox entry, waiting up to ``wait`` seconds (None: forever).

        False when the wait ran out. Not ``asyncio.timeout``: the wait runs on the
        injectable clock, so tests drive it.
        """
        try:
            self._add(self._inbox.get_nowait())
            return True
        except asyncio.QueueEmpty:
            pass
        if wait is None:
            self._add(await self._inbox.get())
            return True
        getter = asyncio.ensure_future(self._inbox.get())
        timer = asyncio.ensure_future(self.clock.sleep(wait))
        try:
            await asyncio.wait((getter, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            self._add(getter.result())
            return True
        return False

    def _take(self) -> list[Pending] | None:
        if self._ready:
            batch = self._ready.popleft()
        elif self._groups:
            key = max(self._groups, key=lambda k: len(self._groups[k].items))
            batch = self._groups.pop(key).items
        else:
            return None
        self.batches_sent += 1
        self.files_sent += len(batch)
        return batch

    async def next_batch(self) -> list[Pending] | None:
        """The next group to send: a full one if any, else the fullest after lingering.

        None when the producer closed and everything was handed out.
        """
        async with self._lock:
            self._drain()
            if not self._ready and not self._groups and not self._ended:
                await self._get(None)  # nothing at all: wait for the first item
                self._drain()
            # Linger while files keep coming (each arrival restarts the wait): the group
            # fills up, and the wait stays bounded by max_files arrivals.
            while not self._ready and not self._ended:
                if not await self._get(self.linger):
                    break
                self._drain()
            return self._take()
