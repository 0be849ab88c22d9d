"""A fake clock for asyncio tests: time moves only when every task is waiting on it.

``sleep(d)`` parks the caller until the clock reaches now + d. When the event loop has
run out of other work for a few turns, the clock jumps to the earliest deadline and wakes
that sleeper. Tests are exact (no real waiting) and instant.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._advancing = False
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time by hand (for code that only reads the clock)."""
        self.now += seconds
        self._wake_due()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), fut))
        self.slept += seconds
        if not self._advancing:
            self._advancing = True
            loop.call_soon(self._step, 0)
        await fut

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def _step(self, idle_turns: int) -> None:
        loop = asyncio.get_event_loop()
        # Let ready tasks run first: the clock must not outrun work that needs no waiting.
        if idle_turns < 20:
            loop.call_soon(self._step, idle_turns + 1)
            return
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # cancelled sleepers
        if not self._sleepers:
            self._advancing = False
            return
        self.now = max(self.now, self._sleepers[0][0])
        self._wake_due()
        loop.call_soon(self._step, 0)
