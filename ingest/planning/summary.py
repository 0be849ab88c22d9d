"""The human summary of a plan (``aion-ingest plan``), and its ``--json`` form."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from ingest.console import human_bytes
from ingest.state.records import RunPlan

_HEADLINES = {
    "planned": "planned",
    "completed": "planned (an interrupted plan was redone and completed)",
    "existing": "already planned: the existing plan, unchanged",
    "dry_run": "dry run: nothing written",
}


def _spread(values: list[int], fmt: Any = str) -> str:
    if not values:
        return "-"
    return (
        f"min {fmt(min(values))} / median {fmt(statistics.median_low(values))} / "
        f"max {fmt(max(values))}"
    )


def render_text(
    plan: RunPlan,
    status: str,
    state_uri: str | None,
    extra: Sequence[str] = (),
    cut_short_at: int | None = None,
) -> str:
    """The summary; ``extra`` lines (the forecast: ingest/planning/forecast.py) go last;
    ``cut_short_at``: the listing stopped after that many objects."""
    filtered = ", ".join(f"{k} {v:,}" for k, v in plan.filtered.items()) or "none"
    sizes = " | ".join(f"{k} {v:,}" for k, v in plan.histogram.items())
    lines = [
        f"run {plan.run_id}: {_HEADLINES.get(status, status)}",
        f"  source    {plan.source}",
        *_cut_short_lines(cut_short_at),
        f"  objects   {plan.items:,} planned ({human_bytes(plan.bytes)}) of {plan.listed:,} listed",
        f"  filtered  {filtered}",
        *_ledger_lines(plan),
        f"  sizes     {sizes}",
        f"  shards    {plan.shards:,}: bytes {_spread(plan.shard_bytes, human_bytes)}",
        f"            objects {_spread(plan.shard_items, lambda v: f'{v:,}')}",
    ]
    if plan.skipped_records:
        lines.append(f"  skipped   {plan.skipped_records:,} unreadable source records")
    lines.append(f"  quota     {_quota_line(plan.quota)}")
    if state_uri and status != "dry_run":
        lines.append(f"  state     {state_uri.rstrip('/')}/runs/{plan.run_id}/run.json")
    lines.extend(extra)
    return "\n".join(lines)


def _cut_short_lines(cut_short_at: int | None) -> list[str]:
    if cut_short_at is None:
        return []
    return [
        f"  limit     listing cut short after {cut_short_at:,} objects (--limit): the source "
        "holds more; the counts, shards and quota below cover these only"
    ]


def _ledger_lines(plan: RunPlan) -> list[str]:
    if not plan.ledger:
        return []
    action = "sent again" if plan.changed_action == "upload" else "not sent (--changed skip)"
    return [
        f"  ledger    {plan.ledger}: {plan.new:,} new, {plan.changed:,} changed ({action}), "
        f"{plan.unchanged:,} unchanged (not planned)"
    ]


def _quota_line(quota: dict[str, Any] | None) -> str:
    if quota is None:
        return "not checked"
    verdict = "can proceed" if quota["can_proceed"] else "CANNOT proceed (ignored)"
    limit = quota.get("monthly_limit")
    available = quota.get("available")
    room = "unlimited" if limit is None else f"{available:,} of {limit:,} left this month"
    text = f"{verdict}: {quota.get('requested') or 0:,} requested, {room}"
    return text + (f" ({quota['message']})" if quota.get("message") else "")


def render_json(
    plan: RunPlan, status: str, state_uri: str | None, cut_short_at: int | None = None
) -> dict[str, Any]:
    """``cut_short_at``: the listing stopped after that many objects (null: all read)."""
    return {"status": status, "state": state_uri, "cut_short_at": cut_short_at, **plan.to_json()}
