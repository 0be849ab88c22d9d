"""The API client tells the metrics observer about every round trip and retry (real sandbox)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import SecretStr

from ingest.api.client import AionClient
from ingest.api.retry import RetryPolicy
from ingest.errors import ConfigError, IngestError, RetryableError
from ingest.metrics.requests import RequestStats
from ingest.settings import ApiSettings


async def _no_sleep(_: float) -> None:
    return None


def client(sandbox: Any, stats: RequestStats, attempts: int = 3) -> AionClient:
    # the httpx engine: the aiohttp one reports a refused connect as a connect timeout
    settings = ApiSettings(
        key=SecretStr(sandbox.api_key),
        base_url=sandbox.base_url,
        max_attempts=attempts,
        transport="httpx",
    )
    policy = RetryPolicy.from_settings(settings, sleep=_no_sleep, rng=random.Random(1))
    return AionClient(settings, policy=policy, observer=stats)


async def test_round_trips_by_template_and_code_and_retries_by_cause(sandbox: Any) -> None:
    stats = RequestStats()
    async with client(sandbox, stats) as api:
        await api.quota_check(3)
        with pytest.raises(IngestError):
            await api.session_status("5c1d6f1e-0000-4000-8000-000000000000")
        sandbox.set_faults(error_rate=1.0, seed=2)
        with pytest.raises(RetryableError):
            await api.quota_check(3)
    assert stats.requests[("/uploads/quota-check", "2xx")] == 1
    (code,) = {c for ep, c in stats.requests if ep == "/uploads/sessions/{id}/status"}
    assert code == "4xx"
    assert stats.requests[("/uploads/quota-check", "5xx")] == 3  # three attempts
    assert stats.latency["/uploads/quota-check"].count == 4
    assert stats.retries == {"5xx": 2}
    assert not any("5c1d6f1e" in ep for ep, _ in stats.requests)
    assert not any("5c1d6f1e" in ep for ep in stats.latency)


async def test_a_refused_connection_is_an_error_code_and_a_connection_retry() -> None:
    from tests.fixtures.ports import free_port

    class Nowhere:
        api_key = "aion_test_key_123"
        base_url = f"http://127.0.0.1:{free_port()}/api/v2"

    # Before the API has answered anything, a refusal is a configuration error (nothing
    # listens at the base URL): no retry, and the attempt is observed as an error.
    stats = RequestStats()
    async with client(Nowhere(), stats, attempts=2) as api:
        with pytest.raises(ConfigError):
            await api.quota_check(1)
    assert stats.requests == {("/uploads/quota-check", "error"): 1}
    assert stats.retries == {}

    # Once it has answered, a refusal is a transient fault: retried, counted by cause.
    stats = RequestStats()
    async with client(Nowhere(), stats, attempts=2) as api:
        api._answered = True
        with pytest.raises(RetryableError):
            await api.quota_check(1)
    assert stats.requests == {("/uploads/quota-check", "error"): 2}
    assert stats.latency["/uploads/quota-check"].count == 2
    assert stats.retries == {"connection": 1}
