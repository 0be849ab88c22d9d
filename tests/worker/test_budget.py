"""One key's request budget shared by live workers (ingest/worker/budget.py).

Workers are Budget objects over one in-memory state store and one fake clock: a worker
joining, one finishing, one crashing (it stops beating without leaving) and one that uses
less than its share. Time moves by hand; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from ingest.worker.budget import Budget, Member, fair_shares, key_id
from ingest.worker.pacing import Limiter
from tests.worker.fakeclock import FakeClock
from tests.worker.memstore import MemoryStateStore

KEY = "aion_test_key_budget"
RPM = 120.0  # 2 requests/s for the key


def _worker(store: MemoryStateStore, clock: FakeClock, label: str, key: str = KEY) -> Budget:
    limiter = Limiter(RPM / 60, clock=clock, start_tokens=1.0)
    return Budget(
        store, key, RPM, limiter, label=label, heartbeat=5.0, clock=clock, wall=clock.time
    )


def _busy(*workers: Budget) -> None:
    """Their limiters made a request wait since the last beat: they want all they can get
    (what the limiter measures is tested in the 'waiting on its source' test below)."""
    for w in workers:
        w.limiter.stats.waited += 1


def test_fair_shares_give_the_unwanted_rest_to_those_who_want_more() -> None:
    assert fair_shares(12.0, [math.inf] * 3) == [4.0, 4.0, 4.0]
    assert fair_shares(12.0, [1.0, math.inf, math.inf]) == [1.0, 5.5, 5.5]
    assert fair_shares(12.0, [1.0, 2.0, 3.0]) == [3.0, 4.0, 5.0]  # the rest, evenly
    assert fair_shares(12.0, [math.inf]) == [12.0]


def test_a_member_name_carries_expiry_and_wants_and_no_secret() -> None:
    m = Member("run.00001.ab12", 1234.5, 0.5)
    path = m.path(f"budget/{key_id(KEY)}")
    assert KEY not in path
    assert Member.parse(path) == m
    assert Member.parse(Member("x", 1.0, math.inf).path("p")) == Member("x", 1.0, math.inf)
    assert Member.parse("budget/k/not-a-member") is None


async def test_a_worker_joining_finishing_and_crashing() -> None:
    clock, store = FakeClock(), MemoryStateStore()
    a = _worker(store, clock, "run.00000")
    assert await a.beat() == pytest.approx(2.0)  # alone: the whole key
    assert a.limiter.ceiling == pytest.approx(2.0)

    b = _worker(store, clock, "run.00001")
    assert await b.beat() == pytest.approx(1.0)  # joins: half at once
    clock.advance(5.0)
    _busy(a, b)
    assert await a.beat() == pytest.approx(1.0)  # a sees b at its next beat
    assert a.limiter.rate == pytest.approx(1.0)

    c = _worker(store, clock, "run.00002")
    assert await c.beat() == pytest.approx(2 / 3)
    clock.advance(5.0)
    _busy(a, b, c)
    await a.beat()
    await b.beat()
    await c.beat()  # c's last beat (t = 10 s): alive until 25 s
    assert (a.members, a.limiter.ceiling) == (3, pytest.approx(2 / 3))

    await b.leave()  # b's shard is done: a clean stop
    clock.advance(5.0)
    _busy(a)
    assert await a.beat() == pytest.approx(1.0)  # at the next beat
    # c crashes: it beats no more and never leaves. Its name expires after ttl (15 s).
    clock.advance(9.0)  # t = 24 s
    _busy(a)
    assert await a.beat() == pytest.approx(1.0)  # c may still be alive
    clock.advance(1.0)  # t = 25 s
    _busy(a)
    assert await a.beat() == pytest.approx(2.0)  # ttl (15 s) after c's last beat: gone
    assert a.members == 1


async def test_a_worker_waiting_on_its_source_leaves_its_share_to_the_others() -> None:
    clock, store = FakeClock(), MemoryStateStore()
    busy, slow = _worker(store, clock, "busy"), _worker(store, clock, "slow")
    await busy.beat()
    await slow.beat()
    # Over 5 s the slow one sends 1 request and never waits for the limiter; the busy one
    # is held back by its limiter.
    await slow.limiter.acquire()
    for _ in range(6):
        await busy.limiter.acquire()
        clock.advance(0.5)
    clock.advance(2.0)
    await slow.beat()
    assert await busy.beat() == pytest.approx(2.0 - 0.3)  # slow wants 0.2/s x 1.5
    assert slow.share == pytest.approx(0.3)


async def test_a_first_beat_only_lowers_the_static_share() -> None:
    """Four workers started together: the first to beat sees itself alone, but keeps the
    static share (budget / 4) until its next beat, instead of the whole key."""
    clock, store = FakeClock(), MemoryStateStore()
    workers = []
    for i in range(4):
        limiter = Limiter(RPM / 60 / 4, clock=clock, start_tokens=1.0)
        workers.append(
            Budget(store, KEY, RPM, limiter, label=f"r.{i}", clock=clock, wall=clock.time)
        )
    assert [await w.beat() for w in workers] == [pytest.approx(0.5)] * 4
    clock.advance(5.0)
    _busy(*workers)
    assert [await w.beat() for w in workers] == [pytest.approx(0.5)] * 4
    await workers[3].leave()
    clock.advance(5.0)
    _busy(*workers[:3])
    assert [await w.beat() for w in workers[:3]] == [pytest.approx(2 / 3)] * 3


async def test_two_runs_on_one_key_split_it_other_keys_do_not_count() -> None:
    clock, store = FakeClock(), MemoryStateStore()
    cron, migration = _worker(store, clock, "cron.00000"), _worker(store, clock, "mig.00000")
    other = _worker(store, clock, "x.00000", key="aion_another_key")
    await cron.beat()
    await other.beat()
    assert await migration.beat() == pytest.approx(1.0)
    assert await other.beat() == pytest.approx(2.0)


async def test_heartbeats_run_in_a_named_task_and_the_member_leaves_on_exit() -> None:
    clock, store = FakeClock(), MemoryStateStore()
    a, b = _worker(store, clock, "a"), _worker(store, clock, "b")
    async with a.member():
        async with b.member():
            assert "budget-heartbeat" in {t.get_name() for t in asyncio.all_tasks()}
            await clock.sleep(5.5)  # a's and b's heartbeats (at 5 s) run on the fake clock
            assert (a.members, b.members) == (2, 2)
        assert [p async for p in store.list("budget/")] != []  # a is still in
        await clock.sleep(5.0)
        assert a.members == 1 and a.share == pytest.approx(2.0)
    assert [p async for p in store.list("budget/")] == []


async def test_between_heartbeats_a_look_sees_a_worker_leave_join_and_expire() -> None:
    """A look (one LIST, no write) between heartbeats moves the share: a worker that
    finished counts out within a second, not at the next heartbeat (the skewed run's tail)."""
    clock, store = FakeClock(), MemoryStateStore()
    a, b, c = (_worker(store, clock, n) for n in ("run.00000", "run.00001", "run.00002"))
    for w in (a, b, c):
        await w.beat()
    clock.advance(5.0)
    _busy(a, b, c)
    for w in (a, b, c):
        await w.beat()  # all at t = 5 s: c alive until 20 s
    assert a.share == pytest.approx(2 / 3)
    writes = len(store.writes)

    await b.leave()  # finished
    clock.advance(1.0)
    assert await a.look() == pytest.approx(1.0)  # one second later, not at t = 10 s
    assert a.limiter.ceiling == pytest.approx(1.0) and a.limiter.rate == pytest.approx(1.0)
    assert len(store.writes) == writes  # a look writes nothing
    assert not any(p.split("/")[-1].startswith("run.00001") for p in store.objects)

    d = _worker(store, clock, "run.00003")
    await d.beat()  # joins
    assert await a.look() == pytest.approx(2 / 3)
    # c crashes (beats no more): its name expires 15 s after its last beat (t = 20 s)
    await d.leave()
    clock.advance(13.0)  # t = 19 s
    assert await a.look() == pytest.approx(1.0)
    clock.advance(1.0)  # t = 20 s
    assert await a.look() == pytest.approx(2.0)  # a's own name is kept by its beats


async def test_the_heartbeat_task_looks_every_second_and_beats_every_fifth() -> None:
    clock, store = FakeClock(), MemoryStateStore()
    a, b = _worker(store, clock, "a"), _worker(store, clock, "b")
    async with a.member():
        async with b.member():
            await clock.sleep(5.5)
            assert (a.members, b.members) == (2, 2)
        assert len(store.writes) == 4  # each joined and beat once at 5 s; looks wrote nothing
        await clock.sleep(1.0)  # b left at 5.5 s: a's look at 6 s sees it
        assert a.members == 1 and a.share == pytest.approx(2.0)
