"""Faults and limits: seeded 5xx, tier and fault rate limits, latency, dropped connections."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.sandbox.files import jpeg

STREAM = "/user-files/upload/stream"


def _statuses(sb, n: int) -> list[int]:
    with sb.client() as c:
        return [
            c.get("/uploads/quota-check", params={"file_count": 1}).status_code for _ in range(n)
        ]


def test_random_errors_are_seeded_and_repeatable(sandbox):
    sandbox.set_faults(error_rate=0.5, seed=42)
    first = _statuses(sandbox, 40)
    sandbox.set_faults(seed=42)  # re-seeding restarts the sequence
    second = _statuses(sandbox, 40)
    sandbox.set_faults(seed=43)
    third = _statuses(sandbox, 40)
    assert first == second
    assert third != first
    assert set(first) == {200, 500, 502, 503}
    assert sandbox.stats()["by_status"]["200"] == sum(s == 200 for s in first + second + third)


def test_error_statuses_can_be_narrowed_and_bodies_are_nested(sandbox):
    sandbox.set_faults(error_rate=1.0, error_statuses=[503])
    with sandbox.client() as c:
        r = c.get("/uploads/quota-check", params={"file_count": 1})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


def test_bad_fault_settings_are_refused(sandbox):
    with httpx.Client(base_url=sandbox.admin_url, headers=sandbox.admin_headers) as admin:
        r = admin.post("/faults", json={"error_rate": 2})
        assert r.status_code == 400 and "error_rate" in r.json()["error"]["message"]
        r = admin.post("/faults", json={"no_such_fault": 1})
        assert r.status_code == 400 and "no_such_fault" in r.json()["error"]["message"]
        assert admin.get("/faults").json()["error_rate"] == 0.0


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/faults"), ("POST", "/faults"), ("POST", "/reset"), ("GET", "/stats"),
     ("GET", "/files")],
)  # fmt: skip
def test_admin_endpoints_want_the_admin_key(sandbox, method, path):
    with sandbox.client() as c:
        c.post(STREAM, files={"file": ("a.jpg", jpeg())}).raise_for_status()
    wrong = [{}, sandbox.headers, {"Authorization": "Bearer not-the-admin-key"}]
    for headers in wrong:  # none, the API key, a wrong key
        r = httpx.request(
            method, f"{sandbox.admin_url}{path}", headers=headers, json={"error_rate": 1.0}
        )
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert "admin key" in r.json()["error"]["message"]
    assert len(sandbox.files()) == 1  # nothing was reset
    assert sandbox.app.faults.faults.error_rate == 0.0  # nor any fault set
    r = httpx.request(
        method, f"{sandbox.admin_url}{path}", headers=sandbox.admin_headers, json={"seed": 1}
    )
    assert r.status_code == 200, r.text


def test_tier_rate_limit_answers_429_with_retry_after(sandbox_factory):
    sb = sandbox_factory(rpm=6, burst=3)  # 1 token per 10 s, 3 to start with
    statuses = _statuses(sb, 5)
    with sb.client() as c:
        r = c.get("/uploads/quota-check", params={"file_count": 1})
    assert statuses == [200, 200, 200, 429, 429]
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 10
    assert r.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert sb.stats()["rate_limited"] == 3


def test_tier_limit_is_per_key(sandbox_factory):
    sb = sandbox_factory(rpm=6, burst=1, api_keys=["key-a", "key-b"])
    a = {"Authorization": "Bearer key-a"}
    b = {"Authorization": "Bearer key-b"}
    url = f"{sb.base_url}/uploads/quota-check?file_count=1"
    assert [httpx.get(url, headers=a).status_code for _ in range(2)] == [200, 429]
    assert httpx.get(url, headers=b).status_code == 200


def test_preset_switches_the_tier_limit_on(sandbox_factory):
    sb = sandbox_factory(tier="FREE", rate_limit=True)
    assert sb.app.options.effective_rpm == 10
    assert _statuses(sb, 4) == [200, 200, 200, 429]


@pytest.mark.parametrize("retry_after", [True, False])
def test_fault_rate_limit_with_and_without_retry_after(sandbox, retry_after):
    sandbox.set_faults(rate_limit_rps=1, rate_limit_retry_after=retry_after)
    with sandbox.client() as c:
        ok = c.get("/uploads/quota-check", params={"file_count": 1})
        limited = c.get("/uploads/quota-check", params={"file_count": 1})
    assert ok.status_code == 200 and limited.status_code == 429
    assert ("retry-after" in limited.headers) is retry_after
    if retry_after:
        assert limited.headers["retry-after"] == "1"


def test_fault_rate_limit_fraction_answers_429_at_random_whatever_the_pace(sandbox):
    sandbox.set_faults(rate_limit_fraction=0.5, seed=3)
    with sandbox.client() as c:
        statuses = [c.get("/uploads/quota-check", params={"file_count": 1}) for _ in range(40)]
    limited = [r for r in statuses if r.status_code == 429]
    assert 8 <= len(limited) <= 32
    assert all(r.headers["retry-after"] == "1" for r in limited)
    assert {r.status_code for r in statuses} == {200, 429}
    # the same seed draws the same answers
    sandbox.set_faults(rate_limit_fraction=0.5, seed=3)
    with sandbox.client() as c:
        again = [c.get("/uploads/quota-check", params={"file_count": 1}) for _ in range(40)]
    assert [r.status_code for r in again] == [r.status_code for r in statuses]


def test_latency_is_added(sandbox):
    sandbox.set_faults(latency_ms=150)
    with sandbox.client() as c:
        started = time.perf_counter()
        c.get("/uploads/quota-check", params={"file_count": 1})
        elapsed = time.perf_counter() - started
    assert elapsed >= 0.15


def test_connection_dropped_mid_body(sandbox):
    sandbox.set_faults(drop_rate=1.0)
    data = jpeg(1, 256 * 1024)
    with sandbox.client() as c, pytest.raises(httpx.TransportError):
        c.post(STREAM, files={"file": ("a.jpg", data)})
    assert sandbox.stats()["dropped"] == 1
    assert sandbox.files() == []
    sandbox.set_faults(drop_rate=0.0)
    with sandbox.client() as c:
        assert c.post(STREAM, files={"file": ("a.jpg", data)}).status_code == 200


def test_answer_lost_after_the_upload_was_stored(sandbox):
    """drop_response_rate: the server stores the file, then the answer never arrives; the
    client's retry (with skip_duplicates) is answered 'skipped' with the stored id."""
    sandbox.set_faults(drop_response_rate=1.0)
    data = jpeg(2, 64 * 1024)
    with sandbox.client() as c, pytest.raises(httpx.TransportError):
        c.post(STREAM, files={"file": ("a.jpg", data)})
    assert sandbox.stats()["dropped"] == 1
    [stored] = sandbox.files()
    sandbox.set_faults(drop_response_rate=0.0)
    with sandbox.client() as c:
        r = c.post(STREAM, files={"file": ("a.jpg", data)}, data={"skip_duplicates": "true"})
    assert r.json()["skipped_existing_image_id"] == stored["id"]


def test_reset_restores_the_start_faults(sandbox_factory):
    sb = sandbox_factory(faults={"error_rate": 1.0, "error_statuses": [502]})
    assert _statuses(sb, 1) == [502]
    sb.set_faults(error_rate=0.0)
    assert _statuses(sb, 1) == [200]
    sb.reset()
    assert _statuses(sb, 1) == [502]
