"""``aion-ingest plan SOURCE --state URI``: wires the source, filters, API and store to
:func:`ingest.plan.make_plan` and prints the summary (or ``--json``)."""

from __future__ import annotations

import contextlib
import json
import sys

from ingest.errors import ConfigError
from ingest.plan import make_plan
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
    from ingest.sources import Filter, open_source, problems_of

    if run_id is not None:
        check_run_id(run_id)  # before anything is opened: a typo is a usage error
    item_filter = Filter.from_settings(settings.filters)
    source = open_source(source_uri, settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(source)
        store: StateStore | None = None
        if settings.state:
            store = await stack.enter_async_context(open_state(settings.state, settings))
        elif not dry_run:
            raise ConfigError(
                "no state store given; pass --state URI or set INGEST_STATE (or use --dry-run)"
            )
        quota_check: QuotaCheck | None = None
        if settings.api.key is not None:
            from ingest.api.client import AionClient

            client = await stack.enter_async_context(AionClient(settings.api))
            quota_check = client.quota_check
        elif not (settings.plan.ignore_quota or dry_run):
            raise ConfigError(
                "no API key for quota-check: set AIONVISION_API_KEY, or plan with --ignore-quota"
            )
        outcome = await make_plan(
            source.list(),
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
    if as_json:
        json.dump(render_json(outcome.plan, outcome.status, outcome.state_uri), sys.stdout)
        print()
    else:
        print(render_text(outcome.plan, outcome.status, outcome.state_uri))
    return 0
