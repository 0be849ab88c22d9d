"""The pacing a run uses, said at its start: how fast, and which setting or answer set it.

With default settings the workers pace themselves to a tier's request budget; a user whose
key is on a faster plan would otherwise wonder why a run crawls. When the user set no tier,
the quota-check answer the plan recorded tells it (``monthly_limit``: 1,000 / 10,000 /
50,000 / unlimited → FREE / STARTER / PROFESSIONAL / ENTERPRISE).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ingest.planning.forecast import plan_forecast
from ingest.settings import TIER_BY_MONTHLY_LIMIT, Settings, Tier
from ingest.state.records import RunPlan


def tier_from_quota(quota: dict[str, Any] | None) -> Tier | None:
    """The tier quota-check's ``monthly_limit`` names; None when there was no answer or the
    limit is not one of the plans' figures."""
    if quota is None:
        return None
    limit = quota.get("monthly_limit")
    if limit is None:
        return "ENTERPRISE"  # unlimited
    return TIER_BY_MONTHLY_LIMIT.get(int(limit))


def choose_tier(settings: Settings, quota: dict[str, Any] | None) -> tuple[Tier, str]:
    """The tier the workers should use, and where it comes from (for :func:`describe`).

    A tier the user set wins; else the one quota-check implies; else the default."""
    if "tier" in settings.api.model_fields_set:
        return settings.api.tier, "set by INGEST_API__TIER"
    found = tier_from_quota(quota)
    if found is not None:
        limit = (quota or {}).get("monthly_limit")
        shown = "unlimited" if limit is None else f"{int(limit):,}"
        return found, f"from quota-check: monthly limit {shown}"
    return settings.api.tier, "the default: quota-check told no tier"


def describe(settings: Settings, tier: Tier, origin: str) -> str:
    """One line: requests per minute, files per batch, where they come from, how to change."""
    effective = with_tier(settings, tier)
    rpm = effective.requests_per_minute()
    if settings.worker.requests_per_minute:
        why = "set by INGEST_WORKER__REQUESTS_PER_MINUTE"
    else:
        why = f"tier {tier}, {origin}"
    return (
        f"pacing: {rpm:,.0f} requests/min for the whole run, {effective.files_per_batch()} "
        f"files per batch ({why}); to change it set INGEST_API__TIER to your plan's tier "
        "or INGEST_WORKER__REQUESTS_PER_MINUTE"
    )


def with_tier(settings: Settings, tier: Tier) -> Settings:
    """``settings`` with the tier the workers will pace to (the forecast uses the same)."""
    return settings.model_copy(update={"api": settings.api.model_copy(update={"tier": tier})})


def forecaster(settings: Settings, parallelism: int | None) -> Callable[[RunPlan], float | None]:
    """A plan's predicted duration at the pacing its workers will use (the run's metrics
    export it beside the measured rate); None for an empty plan."""

    def seconds(plan: RunPlan) -> float | None:
        if plan.items == 0:
            return None
        tier, _ = choose_tier(settings, plan.quota)
        return plan_forecast(plan, with_tier(settings, tier), parallelism).seconds

    return seconds
