"""The run's steps against the state store: plan, progress, report (:class:`RunSteps`)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from ingest.items import Item
from ingest.launch.semantics import Verdict, VerdictKind
from ingest.ledger.merge import merge_run
from ingest.orchestration.progress import RunProgress, RunTracker
from ingest.planning.planner import PlanOutcome
from ingest.report import Report, build_report, shard_statuses
from ingest.settings import Settings
from ingest.state.base import RunLayout, StateStore
from ingest.state.claims import stored_backed_claims
from ingest.state.records import RunPlan, read_plan
from ingest.worker.ids import resolve_pending_ids

Planner = Callable[[str | None], Awaitable[PlanOutcome]]
"""Plan run ``run_id`` (None: a new id) into the store, or read back its finished plan."""


class StoreSteps:
    """:class:`ingest.orchestration.flow.RunSteps` over one open state store.

    ``planner`` is None for a run that is planned already (``resume``): its plan is read.
    ``on_plan`` sees each plan outcome (``run`` prints the plan's summary). ``settings``
    give the report step the API key to resolve pending image ids with
    (``worker.batch_results=list``).
    """

    def __init__(
        self,
        store: StateStore,
        planner: Planner | None = None,
        *,
        settings: Settings,
        on_plan: Callable[[PlanOutcome], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.planner = planner
        self.on_plan = on_plan
        self._trackers: dict[str, RunTracker] = {}
        self.last_report: Report | None = None  # the run's metrics push its counts

    async def plan(self, run_id: str | None) -> RunPlan:
        if self.planner is None:
            if run_id is None:
                raise ValueError("a run id is needed to read a plan")
            return await read_plan(self.store, run_id)
        outcome = await self.planner(run_id)
        if self.on_plan is not None:
            self.on_plan(outcome)
        return outcome.plan

    async def complete_shards(self, plan: RunPlan) -> list[int]:
        """Shards whose checkpoint says complete AND whose results back every claim (a
        checkpoint that claims more than its results is redone, not trusted)."""
        layout = RunLayout(plan.run_id)
        out = []
        for s in await shard_statuses(self.store, plan):
            if s.state != "complete":
                continue
            backed = await stored_backed_claims(self.store, layout, s.index)
            if backed.is_complete(s.items):
                out.append(s.index)
        return out

    def tracker(self, run_id: str) -> RunTracker | None:
        """The run's progress tracker once it has sampled (``tracker.latest``)."""
        return self._trackers.get(run_id)

    async def progress(self, run_id: str) -> RunProgress:
        tracker = self._trackers.get(run_id)
        if tracker is None:  # the plan is read once; each sample reads checkpoints only
            tracker = RunTracker(self.store, await read_plan(self.store, run_id))
            self._trackers[run_id] = tracker
        return await tracker.sample()

    async def report(self, run_id: str, verdict: Verdict | None) -> list[str]:
        plan = await read_plan(self.store, run_id)
        head: list[str] = []
        if verdict is None:  # nothing was planned, so nothing ran: complete as it is
            merged = await build_report(self.store, run_id, verdict=VerdictKind.COMPLETE.value)
        else:
            # image ids left pending by the workers (batch_results=list): resolved before
            # the report and the ledger, so both hold them
            ids = await resolve_pending_ids(self.store, run_id, plan.shards, self.settings)
            if ids.pending:
                head.append(ids.summary())
            merged = await build_report(
                self.store,
                run_id,
                verdict=verdict.kind.value,
                failed_indexes=sorted(verdict.failed),
            )
        self.last_report = merged
        lines = [*head, *merged.summary().splitlines()]
        if plan.ledger and plan.items:
            lines.append(await record_in_ledger(self.store, plan))
        return lines


async def record_in_ledger(store: StateStore, plan: RunPlan) -> str:
    """Merge the run's ``uploaded`` and ``skipped_duplicate`` outcomes into its ledger; a
    line for people. A run merged already (a resumed run, or one whose merge the next run
    of its import finished while it still ran) is merged again: its later outcomes count."""
    assert plan.ledger is not None
    with tempfile.TemporaryDirectory(prefix="aion-ledger-") as tmp:
        done = await merge_run(store, plan.ledger, plan.run_id, Path(tmp))
        if done.already:
            done = await merge_run(store, plan.ledger, plan.run_id, Path(tmp), again=True)
    return f"ledger {plan.ledger}: {done.recorded:,} objects of run {plan.run_id} recorded"


async def listed(items: list[Item]) -> AsyncIterator[Item]:
    """``items`` as an async listing (a retry of a report's failed rows)."""
    for item in items:
        yield item
