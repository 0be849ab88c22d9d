"""Pacing: one limiter per worker, shared by its tasks, for requests/s and bytes/s.

The API limits requests per minute per key, and every pod of a run shares that key, so
each worker paces itself within its share (run budget / parallel workers). Two token
buckets do the counting; the request rate adapts to the server (AIMD):

- a 429 multiplies the request rate by ``decrease`` (not below ``floor``), once per burst of
  429s: a 429 answering a request sent *before* the last decrease says nothing new;
- after each ``increase_period`` seconds with successes and no 429, the rate grows by
  ``increase`` requests/s, back up to the ceiling (the worker's share), never above it;
- a Retry-After from the server pauses every task of the worker until then (one shared
  "not before" time), since the key, not the task, is limited.

Accuracy matters more than elegance here: the budget benchmark needs files/min >= 0.95 x
R x files-per-batch with <= 1% 429s, so the long-run grant rate must equal the ceiling. A
token bucket is self-correcting (a late wake-up does not lose the tokens that accrued
meanwhile, up to the burst), unlike ``sleep(1/rate)`` loops that drift by every overshoot.
Waiters queue on one FIFO lock: only the head of the queue sleeps on the clock, so grants
come out in arrival order, a rate change applies to the very next grant, and a fake clock
that jumps to each sleeper's deadline drives the tests exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncIterator

from ingest.errors import RateLimited
from ingest.streams import ByteStream
from ingest.worker.clock import SYSTEM_CLOCK, Clock
from ingest.worker.tapped import TappedStream

log = logging.getLogger(__name__)

_EPS = 1e-9
MAX_DEFAULT_FLOOR = 0.1  # requests/s
MAX_NAP = 1.0  # seconds: the longest sleep before a waiting request looks at the rate again


def start_phase(index: int) -> float:
    """Where in its first interval worker ``index`` sends its first request (0 to 1)."""
    return (index * 0.6180339887498949) % 1.0


class TokenBucket:
    """Tokens accrue at ``rate``/s up to ``capacity``.

    A take may overdraw the bucket (debt) when the cost exceeds the capacity: a 1 GiB file
    under a 10 MB/s cap goes at once and the following takes wait until the debt is paid,
    so the long-run rate holds without needing a 1 GiB burst allowance.
    """

    def __init__(
        self, rate: float, capacity: float, now: float, initial: float | None = None
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("a token bucket needs a positive rate and capacity")
        self._rate = rate
        self.capacity = capacity
        self._tokens = capacity if initial is None else min(initial, capacity)
        self._stamp = now

    @property
    def rate(self) -> float:
        return self._rate

    def tokens(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def set_rate(self, rate: float, now: float) -> None:
        """Change the rate from ``now`` on (tokens accrued so far are kept)."""
        self._refill(now)
        self._rate = rate

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def wait_time(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` can be taken (0 when it can be now)."""
        self._refill(now)
        need = min(cost, self.capacity)
        missing = need - self._tokens
        if missing <= _EPS * max(1.0, need):
            return 0.0
        return missing / self._rate

    def restart(self, tokens: float, now: float) -> None:
        """Forget what accrued: ``tokens`` (at most the capacity) as of ``now``."""
        self._tokens = min(tokens, self.capacity)
        self._stamp = now

    def take(self, cost: float, now: float) -> None:
        self._refill(now)
        self._tokens -= cost


@dataclasses.dataclass
class PacingStats:
    """What the limiter did: read by metrics and the benchmarks."""

    granted: int = 0
    waited: int = 0  # grants that had to wait for the bucket: the pace was the limit
    granted_bytes: int = 0
    throttled: int = 0
    decreases: int = 0
    increases: int = 0
    pauses: int = 0


@dataclasses.dataclass
class Permit:
    """One granted request: report how it went so the pace adapts."""

    limiter: Limiter
    granted_at: float

    def throttled(self, retry_after: float | None = None) -> None:
        self.limiter.throttled(retry_after, sent_at=self.granted_at)

    def succeeded(self) -> None:
        self.limiter.succeeded()


class Limiter:
    """Requests/s (adaptive) and bytes/s (fixed) for one worker's tasks.

    ``await limiter.acquire(nbytes)`` waits for one request slot (and ``nbytes`` of byte
    budget); ``async with limiter.request(nbytes) as permit`` does the same and reports the
    outcome by itself: a :class:`RateLimited` escaping the block counts as a 429 (its
    ``retry_after`` pauses everyone), a clean exit as a success.
    """

    def __init__(
        self,
        requests_per_second: float,
        *,
        bytes_per_second: float | None = None,
        burst: float = 2.0,
        byte_burst: float | None = None,
        decrease: float = 0.5,
        floor: float | None = None,
        increase: float | None = None,
        increase_period: float = 2.0,
        decrease_cooldown: float = 1.0,
        start_tokens: float | None = None,
        rng: random.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        self.clock = clock
        self.ceiling = requests_per_second
        # Defaults: never below 5% of the share (nor above one request per 10 s: a budget
        # set far above the key's real limit, e.g. a wrong tier, must still get down to it
        # when 429s come without Retry-After); climb back from half to full in ~10 periods.
        default_floor = min(requests_per_second * 0.05, MAX_DEFAULT_FLOOR)
        self.floor = min(floor if floor is not None else default_floor, self.ceiling)
        self.increase = increase if increase is not None else requests_per_second * 0.05
        self.decrease = decrease
        self.increase_period = increase_period
        self.decrease_cooldown = decrease_cooldown
        now = clock.monotonic()
        # A burst of 2 absorbs one late wake-up without losing tokens (a capacity of 1
        # would drop whatever accrued during the oversleep). The start is spread instead:
        # a random fraction of one token puts the first grant at a uniform point of the
        # first interval, so N workers started together (and the plan's quota check) do
        # not fire N requests into the API's small burst (sandbox and API: 3) at once.
        # The phase counts from the first request, not from here: a worker reads its plan,
        # joins the budget and reads its first objects first (seconds, about alike for
        # workers started together), and tokens accrued meanwhile would let each send a
        # burst of 2 at once on its first requests, all workers together (429s).
        if start_tokens is None:
            start_tokens = (rng or random.Random()).random()
        self._start_tokens: float | None = start_tokens
        self._requests = TokenBucket(requests_per_second, burst, now, initial=start_tokens)
        self._bytes = (
            TokenBucket(bytes_per_second, byte_burst or bytes_per_second, now)
            if bytes_per_second
            else None
        )
        self._request_lock = asyncio.Lock()
        self._bytes_lock = asyncio.Lock()
        self._not_before = now
        self.waiting = False  # a request is waiting for the bucket right now
        self._last_decrease = -float("inf")
        self._last_change = now
        self.stats = PacingStats()

    @classmethod
    def worker_share(
        cls,
        run_requests_per_minute: float,
        parallel_workers: int,
        *,
        bytes_per_second: float | None = None,
        index: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> Limiter:
        """This worker's share: the run's budget split evenly across the parallel workers.

        With the shard ``index`` the start is spread by index, not at random: a saturated
        limiter grants at exact intervals, so its start phase is kept for the whole run,
        and random phases leave some runs (about 1 in 8 with 4 workers, in a fake-clock
        simulation) with all workers within a quarter interval of each other for good: a
        429 every round against a burst of 3. Phases at the golden-ratio sequence of the
        index keep any set of consecutive indexes spread out.
        """
        share = run_requests_per_minute / parallel_workers / 60.0
        start = None if index is None else 1.0 - start_phase(index)
        return cls(
            share, bytes_per_second=bytes_per_second, start_tokens=start, rng=rng, clock=clock
        )

    def set_ceiling(self, requests_per_second: float) -> None:
        """A new share of the key's budget (``worker.budget``): the ceiling moves, and the
        pace with it unless it is backing off after a 429 (then it climbs to the new
        ceiling by the usual steps)."""
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        now = self.clock.monotonic()
        old, self.ceiling = self.ceiling, requests_per_second
        self.floor = min(self.floor, requests_per_second)
        self.increase = requests_per_second * 0.05
        if self.rate >= old * (1 - 1e-9) or self.rate > requests_per_second:
            self._requests.set_rate(requests_per_second, now)

    @property
    def rate(self) -> float:
        """The current request rate (requests/s), between floor and ceiling."""
        return self._requests.rate

    @property
    def not_before(self) -> float:
        """Monotonic time before which no request is granted (the server's Retry-After)."""
        return self._not_before

    async def acquire(self, nbytes: int = 0) -> float:
        """Wait for a request slot and ``nbytes`` of byte budget; returns the grant time."""
        waited = 0
        async with self._request_lock:
            if self._start_tokens is not None:  # the first request: the phase starts now
                self._requests.restart(self._start_tokens, self.clock.monotonic())
                self._start_tokens = None
            while True:
                now = self.clock.monotonic()
                if now < self._not_before:
                    await self.clock.sleep(self._not_before - now)
                    continue
                wait = self._requests.wait_time(1, now)
                if wait <= 0:
                    self._requests.take(1, now)
                    self.stats.granted += 1
                    self.stats.waited += waited
                    break
                waited = 1
                self.waiting = True
                try:
                    # In naps of at most MAX_NAP: a new share (set_ceiling) must apply to
                    # a request already waiting, not after a wait computed at a tiny rate.
                    await self.clock.sleep(min(wait, MAX_NAP))
                finally:
                    self.waiting = False
        if nbytes:
            await self.acquire_bytes(nbytes)
        return now

    async def acquire_bytes(self, nbytes: int) -> None:
        """Wait for ``nbytes`` of byte budget (no request slot): for pacing a body's chunks."""
        if self._bytes is None or nbytes <= 0:
            self.stats.granted_bytes += max(0, nbytes)
            return
        async with self._bytes_lock:
            while True:
                now = self.clock.monotonic()
                wait = self._bytes.wait_time(nbytes, now)
                if wait <= 0:
                    self._bytes.take(nbytes, now)
                    self.stats.granted_bytes += nbytes
                    return
                await self.clock.sleep(wait)

    @contextlib.asynccontextmanager
    async def request(self, nbytes: int = 0) -> AsyncIterator[Permit]:
        permit = Permit(self, await self.acquire(nbytes))
        try:
            yield permit
        except RateLimited as exc:
            permit.throttled(exc.retry_after)
            raise
        else:
            permit.succeeded()

    def throttled(self, retry_after: float | None = None, *, sent_at: float | None = None) -> None:
        """A 429 came back: slow down (once per burst) and honour Retry-After for all."""
        now = self.clock.monotonic()
        self.stats.throttled += 1
        if retry_after is not None and retry_after > 0 and now + retry_after > self._not_before:
            self._not_before = now + retry_after
            self.stats.pauses += 1
        stale = (
            sent_at <= self._last_decrease
            if sent_at is not None
            else now - self._last_decrease < self.decrease_cooldown
        )
        if stale:
            return
        new = max(self.floor, self.rate * self.decrease)
        log.info(
            "rate limited: pace %.3f -> %.3f requests/s",
            self.rate,
            new,
            extra={"retry_after": retry_after},
        )
        self._requests.set_rate(new, now)
        self._last_decrease = now
        self._last_change = now
        self.stats.decreases += 1

    def succeeded(self) -> None:
        """A request went through: after a calm period, climb back toward the ceiling."""
        now = self.clock.monotonic()
        if self.rate >= self.ceiling:
            self._last_change = now
            return
        if now - self._last_change >= self.increase_period:
            self._requests.set_rate(min(self.ceiling, self.rate + self.increase), now)
            self._last_change = now
            self.stats.increases += 1

    def pace(self, stream: ByteStream) -> ByteStream:
        """``stream`` whose chunks wait for byte budget before they are sent."""
        if self._bytes is None:
            return stream
        return TappedStream(stream, self.acquire_bytes)
