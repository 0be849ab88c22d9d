"""``aion-ingest plan SOURCE --state URI``: wires the source, filters, API and store to
:func:`ingest.plan.make_plan` and prints the summary (or ``--json``)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator

from ingest.errors import ConfigError
from ingest.items import Item
from ingest.plan import PlanOutcome, make_plan
from ingest.planning.forecast import forecast_lines
from ingest.planning.model import QuotaCheck
from ingest.planning.runid import check_run_id
from ingest.planning.summary import render_json, render_text
from ingest.settings import Settings
from ingest.state import StateStore, open_state


async def plan_command(
    source_uri: str,
    settings: Settings,
    *,
    run_id: str | None = None,
    as_json: bool = False,
    dry_run: bool = False,
) -> int:
    """Plan and print; returns the exit code (errors propagate as IngestError)."""
    if run_id is not None:
        check_run_id(run_id)  # before anything is opened: a typo is a usage error
    async with contextlib.AsyncExitStack() as stack:
        store: StateStore | None = None
        if settings.state:
            store = await stack.enter_async_context(open_state(settings.state, settings))
        elif not dry_run:
            raise ConfigError(
                "no state store given; pass --state URI or set INGEST_STATE (or use --dry-run)"
            )
        outcome = await plan_source(source_uri, settings, store, run_id=run_id, dry_run=dry_run)
    if as_json:
        json.dump(render_json(outcome.plan, outcome.status, outcome.state_uri), sys.stdout)
        print()
    else:
        extra = forecast_lines(outcome.plan, settings)
        print(render_text(outcome.plan, outcome.status, outcome.state_uri, extra))
    return 0


async def plan_source(
    source_uri: str,
    settings: Settings,
    store: StateStore | None,
    *,
    run_id: str | None = None,
    dry_run: bool = False,
    items: AsyncIterator[Item] | None = None,
) -> PlanOutcome:
    """Open the source, filters and API client, and plan into ``store``.

    ``items`` replaces the source's listing (a retry of a report's failed rows); the
    source URI is still recorded, since workers read the objects from it.
    """
    from ingest.sources import Filter, open_source, problems_of

    item_filter = Filter.from_settings(settings.filters)
    source = open_source(source_uri, settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(source)
        quota_check: QuotaCheck | None = None
        if settings.api.key is not None:
            from ingest.api.client import AionClient

            client = await stack.enter_async_context(AionClient(settings.api))
            quota_check = client.quota_check
        elif not (settings.plan.ignore_quota or dry_run):
            raise ConfigError(
                "no API key for quota-check: set AIONVISION_API_KEY, or plan with --ignore-quota"
            )
        return await make_plan(
            items if items is not None else source.list(),
            settings=settings,
            source_uri=source_uri,
            store=store,
            run_id=run_id,
            item_filter=item_filter,
            filters_description=item_filter.describe(),
            quota_check=quota_check,
            skipped_records=lambda: problems_of(source).count,
            dry_run=dry_run,
        )
