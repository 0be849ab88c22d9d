"""The per-key token bucket, on a fake clock: exact enough for the rate-limit benchmark."""

from __future__ import annotations

from ingest.sandbox.faults import Faults, FaultState, retry_after_header


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_pacing_at_the_limit_never_sees_a_429():
    state = FaultState(Faults(), rpm=100, burst=3)
    clock = state.clock = FakeClock()
    admitted = 0
    for _ in range(6000):  # one request every 0.6 s for an hour = exactly 100/min
        assert state.tier_limited("k") == 0.0
        admitted += 1
        clock.now += 0.6
    assert admitted == 6000


def test_over_a_minute_only_rate_plus_burst_get_through():
    state = FaultState(Faults(), rpm=30, burst=3)
    clock = state.clock = FakeClock()
    admitted, waits = 0, []
    for _ in range(600):  # 10 requests per second for 60 s
        wait = state.tier_limited("k")
        if wait == 0:
            admitted += 1
        else:
            waits.append(wait)
        clock.now += 0.1
    assert admitted in (32, 33)  # 30 refilled + 3 burst, give or take the last tick
    assert max(waits) <= 2.0 and retry_after_header(min(waits)) == "1"


def test_retry_after_rounds_up_to_whole_seconds():
    assert [retry_after_header(w) for w in (0.01, 1.0, 1.2, 9.99)] == ["1", "1", "2", "10"]
