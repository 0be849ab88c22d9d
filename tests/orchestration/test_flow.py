"""The one flow (plan → launch → watch → report) over a scripted launcher and run steps."""

from __future__ import annotations

import asyncio
import io
import os
import signal
from collections.abc import Collection

import pytest

from ingest.launch.semantics import Verdict, VerdictKind
from ingest.orchestration.flow import orchestrate
from ingest.orchestration.progress import ProgressView, RunProgress
from ingest.state.records import RunPlan
from tests.orchestration.test_coordinator import fake_plan


class Launcher:
    """Ends with ``verdict``, or waits for the stop when it is None."""

    def __init__(self, verdict: Verdict | None, *, running: bool = False) -> None:
        self.verdict = verdict
        self.running = running
        self.launched: list[tuple[str, list[int]]] = []
        self.watching = asyncio.Event()

    async def resolve_run_id(self, run_id: str | None) -> str | None:
        return run_id

    async def attach(self, run_id: str) -> bool:
        return self.running

    async def launch(self, plan: RunPlan, complete: Collection[int]) -> None:
        self.launched.append((plan.run_id, sorted(complete)))

    async def watch(self, stop: asyncio.Event) -> Verdict | None:
        self.watching.set()
        if self.verdict is None:
            await stop.wait()
        return self.verdict

    def stopped(self, run_id: str, signum: int) -> str:
        return f"stopped by {signal.Signals(signum).name}"

    def failure_hints(self, run_id: str, verdict: Verdict) -> list[str]:
        return ["look at the logs"]


class Steps:
    def __init__(self, plan: RunPlan, complete: list[int] | None = None) -> None:
        self.the_plan = plan
        self.complete = complete or []
        self.planned: list[str | None] = []
        self.reported: list[Verdict | None] = []
        self.samples = 0

    async def plan(self, run_id: str | None) -> RunPlan:
        self.planned.append(run_id)
        return self.the_plan

    async def complete_shards(self, plan: RunPlan) -> list[int]:
        return self.complete

    async def progress(self, run_id: str) -> RunProgress:
        self.samples += 1
        return RunProgress(run_id, 0.0, 30, 300, 0, 0, 0.0, 0.0, None, ())

    async def report(self, run_id: str, verdict: Verdict | None) -> list[str]:
        self.reported.append(verdict)
        return [f"run {run_id}: the report"]


def verdict(kind: VerdictKind, failed: frozenset[int] = frozenset()) -> Verdict:
    return Verdict(kind, 3, frozenset(range(3)) - failed, failed)


async def flow(
    launcher: Launcher, steps: Steps, run_id: str | None = None
) -> tuple[int, list[str]]:
    said: list[str] = []
    view = ProgressView(io.StringIO(), tty=False)
    code = await asyncio.wait_for(
        orchestrate(launcher, steps, run_id=run_id, say=said.append, view=view), timeout=30
    )
    return code, said


async def test_a_complete_run_plans_launches_and_reports() -> None:
    steps = Steps(fake_plan("r1", 3), complete=[1])
    launcher = Launcher(verdict(VerdictKind.COMPLETE))
    code, said = await flow(launcher, steps)
    assert code == 0
    assert steps.planned == [None]  # the planner names a new run
    assert launcher.launched == [("r1", [1])]  # a resumed shard needs no worker
    assert "run r1: 1/3 shards complete already" in said
    assert "run r1: workers ended: Complete: 3/3 indexes complete" in said
    assert said[-1] == "run r1: the report"
    assert steps.samples >= 2  # the baseline and the final sample


async def test_failed_shards_exit_4_with_the_launchers_hints() -> None:
    steps = Steps(fake_plan("r1", 3))
    code, said = await flow(
        Launcher(verdict(VerdictKind.FAILED_INDEXES, frozenset({2}))), steps, run_id="r1"
    )
    assert code == 4
    assert steps.planned == ["r1"]
    assert "run r1: indexes 2 failed" in said
    assert said[-1] == "look at the logs"


async def test_nothing_to_upload_reports_without_launching() -> None:
    plan = fake_plan("r0", 0)
    launcher = Launcher(verdict(VerdictKind.COMPLETE))
    steps = Steps(plan)
    code, said = await flow(launcher, steps)
    assert code == 0
    assert launcher.launched == []
    assert steps.reported == [None]
    assert "run r0: nothing to upload" in said


async def test_running_workers_are_adopted_not_planned_again() -> None:
    steps = Steps(fake_plan("r1", 3))
    launcher = Launcher(verdict(VerdictKind.COMPLETE), running=True)
    code, said = await flow(launcher, steps, run_id="r1")
    assert code == 0
    assert steps.planned == [] and launcher.launched == []
    assert "run r1: its workers are running already; watching them" in said


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_stops_the_watch_with_128_plus_its_number(signum: int) -> None:
    steps = Steps(fake_plan("r1", 3))
    launcher = Launcher(None)

    async def send() -> None:
        await launcher.watching.wait()
        os.kill(os.getpid(), signum)  # a real signal, to the handler the flow set

    sender = asyncio.create_task(send())
    code, said = await flow(launcher, steps)
    await sender
    assert code == 128 + signum
    assert said[-1] == f"stopped by {signal.Signals(signum).name}"
    assert steps.reported == []  # the run is not over: no report
