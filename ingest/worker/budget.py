"""One request budget per API key, shared by the workers that use it, as they come and go.

The API limits requests per key, not per worker. A static share (the key's rate divided by
the run's parallelism) wastes the share of every worker that has finished or waits on its
source: the last workers of a run would crawl at 1/P of the key's rate. Instead each
worker is a *member* of its key's budget in the state store and paces itself to its
share of the live members, recomputed at every heartbeat.

Membership costs one small write, one delete and one LIST per heartbeat, whatever the
number of members, and one LIST per ``look`` (1 s) between heartbeats, so that a worker
that leaves gives its share to the others within a second, not a heartbeat (in a skewed
run the last workers' tail is paced by it): a member is an empty object whose *name* says
all that is needed,

    budget/<key id>/<member>@<expires, epoch ms>@<wants, requests/min or "max">

``key id`` is a digest of the API key (never the key). A heartbeat writes the next name and
deletes the previous one; a worker that stops deletes its name, one that crashes drops
out when its expiry passes (``ttl``, three heartbeats by default), and any member removes
names expired long ago. A worker's first beat can only lower its static share (budget /
parallel workers), so workers starting together do not each take the whole budget.
Expiry is the writer's wall clock read by other machines, so clock skew between pods
shortens or lengthens a crashed member's tail by the skew, no more.

Shares are max-min fair (water-filling): a member that used less than its share in the
last heartbeat (its limiter never made a request wait: it waits on S3 instead) says how
much it wants, gets that, and the rest of the budget goes evenly to the members that want
more. Two runs on one key split it the same way when they use the same state store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

from ingest.state.base import StateStore
from ingest.worker.clock import SYSTEM_CLOCK, Clock
from ingest.worker.pacing import Limiter

log = logging.getLogger(__name__)

PREFIX = "budget"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# Headroom on what a member that does not fill its share says it wants: it can grow by
# half per heartbeat before its limiter makes it wait and it asks for "max" again.
HEADROOM = 1.5
GARBAGE_AFTER = 10  # ttls: names of crashed members older than this are removed


def key_id(api_key: str) -> str:
    """A stable, non-secret name for one API key's budget."""
    return hashlib.sha256(b"aion-ingest budget\0" + api_key.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """One member as its name says: who, until when (epoch s), wanting how much (req/s)."""

    name: str
    expires: float
    wants: float  # math.inf: as much as it can get

    def path(self, prefix: str) -> str:
        wants = "max" if math.isinf(self.wants) else f"{self.wants * 60:.3f}"
        return f"{prefix}/{self.name}@{int(self.expires * 1000)}@{wants}"

    @classmethod
    def parse(cls, path: str) -> Member | None:
        try:
            name, expires, wants = path.rsplit("/", 1)[-1].split("@")
            rate = math.inf if wants == "max" else float(wants) / 60
            return cls(name, int(expires) / 1000, rate)
        except ValueError:
            return None  # not a member's name: ignored


def fair_shares(budget: float, wants: Sequence[float]) -> list[float]:
    """Max-min fair split of ``budget``: those who want less than an even share get what
    they want, the rest goes evenly to those who want more; when everybody wants less, the
    unwanted rest is spread evenly too (a share is a ceiling: the shares always add up to
    the budget, so a member that picks up gets going before its next beat)."""
    shares = [0.0] * len(wants)
    left = budget
    todo = sorted(range(len(wants)), key=lambda i: wants[i])
    while todo:
        even = left / len(todo)
        i = todo[0]
        if wants[i] >= even:
            for j in todo:
                shares[j] = even
            return shares
        shares[i] = wants[i]
        left -= wants[i]
        todo.pop(0)
    return [s + left / len(wants) for s in shares] if wants else shares


class Budget:
    """This worker's membership in its key's budget; sets its limiter's ceiling."""

    def __init__(
        self,
        store: StateStore,
        api_key: str,
        requests_per_minute: float,
        limiter: Limiter,
        *,
        label: str = "worker",
        heartbeat: float = 5.0,
        look: float | None = None,
        ttl: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.prefix = f"{PREFIX}/{key_id(api_key)}"
        self.rate = requests_per_minute / 60.0
        self.limiter = limiter
        self.name = f"{_UNSAFE.sub('_', label)[:80]}.{uuid.uuid4().hex[:8]}"
        self.heartbeat = heartbeat
        self.look_every = min(look if look is not None else 1.0, heartbeat)
        self.ttl = ttl if ttl is not None else 3 * heartbeat
        self.clock = clock
        self.wall = wall
        self._path: str | None = None
        self._me: Member | None = None
        self._beaten = clock.monotonic()
        self._granted = limiter.stats.granted
        self._waited = limiter.stats.waited
        self._since = clock.monotonic()
        self.members = 0
        self.share = limiter.ceiling
        self._first = True

    def wants(self) -> float:
        """What this worker would use: everything when its limiter made a request wait
        since the last beat, else what it used, with headroom."""
        now = self.clock.monotonic()
        granted = self.limiter.stats.granted - self._granted
        waited = self.limiter.stats.waited - self._waited
        elapsed = max(now - self._since, 1e-9)
        self._granted, self._waited, self._since = (
            self.limiter.stats.granted,
            self.limiter.stats.waited,
            now,
        )
        if waited or self.limiter.waiting or self._path is None:
            return math.inf
        return max(granted / elapsed * HEADROOM, self.rate * 0.01)

    async def beat(self) -> float:
        """Renew this member, read the others, set the limiter's ceiling: this worker's share
        (req/s), returned."""
        me = Member(self.name, self.wall() + self.ttl, self.wants())
        path = me.path(self.prefix)
        await self.store.put(path, b"")
        if self._path is not None and self._path != path:
            await self.store.delete(self._path)
        self._path, self._me = path, me
        self._beaten = self.clock.monotonic()
        share, seen = await self._share(me)
        if self._first:
            # Workers started together each see few others at their first beat; had the
            # first taken the whole budget until its next beat, they would overshoot the
            # key's rate together (429s). So the first beat only lowers the static share.
            share = min(share, self.limiter.ceiling)
            self._first = False
        self._apply(share, seen)
        return share

    async def look(self) -> float:
        """Between heartbeats: read the members again (one LIST, no write) and move the
        ceiling, so a member that left (or joined) counts within ``look`` seconds."""
        if self._me is None or self._first:
            return await self.beat()
        share, seen = await self._share(self._me)
        self._apply(share, seen)
        return share

    async def _share(self, me: Member) -> tuple[float, int]:
        """This member's fair share of the live members listed now (req/s), and how
        many members are live."""
        now = self.wall()
        latest: dict[str, Member] = {}
        async for p in self.store.list(self.prefix + "/"):
            m = Member.parse(p)
            if m is None:
                continue
            if m.expires < now - GARBAGE_AFTER * self.ttl:
                await self.store.delete(p)
                continue
            if m.expires > now and (m.name not in latest or m.expires > latest[m.name].expires):
                latest[m.name] = m
        latest[me.name] = me  # whatever the listing's lag
        names = sorted(latest)
        shares = fair_shares(self.rate, [latest[n].wants for n in names])
        return shares[names.index(me.name)], len(names)

    def _apply(self, share: float, seen: int) -> None:
        if seen != self.members:
            log.info(
                "request budget: %d live workers on this key, this one's share %.1f/min",
                seen,
                share * 60,
            )
        self.members = seen
        self.share = share
        self.limiter.set_ceiling(share)

    async def leave(self) -> None:
        """Drop out now (a clean stop), so the others take the share at their next beat."""
        if self._path is not None:
            path, self._path = self._path, None
            await self.store.delete(path)

    async def run(self) -> None:
        """Beat every ``heartbeat`` seconds, and look every ``look`` seconds between, until
        cancelled. A failing state store costs the update, not the shard: the last share
        stays in force (logged)."""
        while True:
            await self.clock.sleep(self.look_every)
            try:
                if self.clock.monotonic() - self._beaten >= self.heartbeat - 1e-6:
                    await self.beat()
                else:
                    await self.look()
            except Exception as exc:  # the budget is an optimisation; uploads go on
                log.warning("request budget: heartbeat failed (%s); share kept", exc)

    @contextlib.asynccontextmanager
    async def member(self) -> AsyncIterator[Budget]:
        """Join (first beat), beat in a named task, leave on the way out."""
        try:
            await self.beat()
        except Exception as exc:
            log.warning("request budget: could not join (%s); static share kept", exc)
        task = asyncio.get_running_loop().create_task(self.run(), name="budget-heartbeat")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await self.leave()
