"""When to try a request again, and how long to wait first.

Exponential backoff with *full jitter* (a uniform draw between 0 and the doubling cap,
the AWS Architecture Blog's recommendation): many workers that failed together do not
retry together. A 429's ``Retry-After`` is honoured instead (cut to ``max_retry_after``).
Two limits stop a retry storm: attempts per request, and a retry budget for the whole
client (process), so a dead API ends the shard with exit code 1 instead of spinning.

Time and randomness are injected (``sleep``, ``rng``) so tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ingest.errors import RetryableError
from ingest.settings import ApiSettings

T = TypeVar("T")
log = logging.getLogger("ingest.api")

Sleep = Callable[[float], Awaitable[None]]


class RetryPolicy:
    """Backoff, attempt limit and budget. One instance is shared by a client's requests."""

    def __init__(
        self,
        *,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_budget: int = 10_000,
        max_retry_after: float = 300.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.budget_left = retry_budget
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.clock = clock  # wall-clock seconds, to read Retry-After dates
        self.retries = 0  # retries made so far, for metrics and tests

    @classmethod
    def from_settings(
        cls,
        settings: ApiSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            retry_budget=settings.retry_budget,
            max_retry_after=settings.max_retry_after,
            sleep=sleep,
            rng=rng,
            clock=clock,
        )

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(backoff_max, base * 2**(attempt-1))]."""
        cap = min(self.backoff_max, self.backoff_base * 2 ** min(attempt - 1, 62))
        return self.rng.uniform(0.0, cap)

    def delay(self, attempt: int, error: RetryableError) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if error.retry_after is not None:
            return min(max(0.0, error.retry_after), self.max_retry_after)
        return self.backoff(attempt)

    async def run(
        self,
        call: Callable[[int], Awaitable[T]],
        *,
        what: str,
        on_retry: Callable[[RetryableError], None] | None = None,
    ) -> T:
        """``call(attempt)`` until it succeeds, raises a non-retryable error, or limits hit.

        The error finally raised carries ``attempts`` (see ``api.errors.attempts_of``);
        ``on_retry`` hears of each error that is retried (metrics).
        """
        attempt = 1
        while True:
            try:
                result = await call(attempt)
            except RetryableError as exc:
                if attempt >= self.max_attempts or self.budget_left <= 0:
                    why = "attempt limit" if attempt >= self.max_attempts else "retry budget spent"
                    log.warning(
                        "giving up on %s after %d attempts (%s): %s", what, attempt, why, exc
                    )
                    exc.attempts = attempt  # type: ignore[attr-defined]
                    raise
                wait = self.delay(attempt, exc)
                self.budget_left -= 1
                self.retries += 1
                if on_retry is not None:
                    on_retry(exc)
                log.info(
                    "retrying %s in %.2fs (attempt %d of %d): %s",
                    what,
                    wait,
                    attempt + 1,
                    self.max_attempts,
                    exc,
                )
                await self.sleep(wait)
                attempt += 1
            except BaseException as exc:
                if isinstance(exc, Exception):
                    exc.attempts = attempt  # type: ignore[attr-defined]
                raise
            else:
                return result
