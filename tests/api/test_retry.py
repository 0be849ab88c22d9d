"""The retry policy on a fake clock: full-jitter backoff, Retry-After, attempt limit, budget."""

from __future__ import annotations

import random

import pytest

from ingest.api.errors import attempts_of
from ingest.api.retry import RetryPolicy
from ingest.errors import FatalError, RateLimited, RetryableError


class FakeSleep:
    """Records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def policy(sleep: FakeSleep, **kw: float) -> RetryPolicy:
    options = {"max_attempts": 5, "backoff_base": 0.5, "backoff_max": 4.0, "retry_budget": 100}
    options.update(kw)
    return RetryPolicy(**options, sleep=sleep, rng=random.Random(7))  # type: ignore[arg-type]


def failing(errors: list[Exception], result: str = "ok"):  # type: ignore[no-untyped-def]
    calls: list[int] = []

    async def call(attempt: int) -> str:
        calls.append(attempt)
        if errors:
            raise errors.pop(0)
        return result

    return call, calls


async def test_retryable_errors_are_retried_until_success() -> None:
    sleep = FakeSleep()
    call, calls = failing([RetryableError("503"), RetryableError("503")])
    assert await policy(sleep).run(call, what="x") == "ok"
    assert calls == [1, 2, 3]
    assert len(sleep.waits) == 2


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    p = policy(FakeSleep())
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0), (500, 4.0)]:
        draws = [p.backoff(attempt) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in draws)
        assert max(draws) > cap * 0.8  # spread over the whole range, not a fixed delay
        assert min(draws) < cap * 0.2


async def test_retry_after_is_honoured_and_capped() -> None:
    sleep = FakeSleep()
    call, _ = failing([RateLimited("429", retry_after=12.0), RateLimited("429", retry_after=900.0)])
    await policy(sleep, max_retry_after=60.0).run(call, what="x")
    assert sleep.waits == [12.0, 60.0]


async def test_attempt_limit_raises_the_last_error_with_its_attempts() -> None:
    sleep = FakeSleep()
    call, calls = failing([RetryableError(f"e{i}") for i in range(10)])
    with pytest.raises(RetryableError, match="e2") as caught:
        await policy(sleep, max_attempts=3).run(call, what="x")
    assert calls == [1, 2, 3]
    assert attempts_of(caught.value) == 3
    assert len(sleep.waits) == 2


async def test_budget_is_shared_by_all_requests() -> None:
    sleep = FakeSleep()
    p = policy(sleep, retry_budget=3)
    call, _ = failing([RetryableError("a"), RetryableError("b")])
    await p.run(call, what="first")
    call, calls = failing([RetryableError("c"), RetryableError("d")])
    with pytest.raises(RetryableError, match="d"):
        await p.run(call, what="second")
    assert calls == [1, 2]  # one retry left in the budget, then the error is final
    assert p.retries == 3


async def test_other_errors_are_not_retried() -> None:
    sleep = FakeSleep()
    call, calls = failing([FatalError("401")])
    with pytest.raises(FatalError) as caught:
        await policy(sleep).run(call, what="x")
    assert calls == [1]
    assert sleep.waits == []
    assert attempts_of(caught.value) == 1
