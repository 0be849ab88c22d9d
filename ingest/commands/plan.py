"""``aion-ingest plan SOURCE --state URI``: plan into the store
(:func:`ingest.planning.planner.plan_source`) and print the summary (or ``--json``)."""

from __future__ import annotations

import contextlib
import json
import sys

from ingest.errors import ConfigError
from ingest.planning.forecast import forecast_lines
from ingest.planning.planner import check_limit, plan_source
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
    limit: int | None = None,
) -> int:
    """Plan and print; returns the exit code (errors propagate as IngestError).

    ``limit`` (with ``dry_run``) stops the listing after that many objects: a preflight
    of the source, the key and the quota that takes seconds on any bucket."""
    if run_id is not None:
        check_run_id(run_id)  # before anything is opened: a typo is a usage error
    if limit is not None:
        check_limit(limit, dry_run)
    async with contextlib.AsyncExitStack() as stack:
        store: StateStore | None = None
        if settings.state:
            store = await stack.enter_async_context(open_state(settings.state, settings))
        elif not dry_run:
            raise ConfigError(
                "no state store given; pass --state URI or set INGEST_STATE (or use --dry-run)"
            )
        outcome = await plan_source(
            source_uri, settings, store, run_id=run_id, dry_run=dry_run, limit=limit
        )
    cut = outcome.cut_short_at
    if as_json:
        json.dump(render_json(outcome.plan, outcome.status, outcome.state_uri, cut), sys.stdout)
        print()
    else:
        extra = forecast_lines(outcome.plan, settings)
        print(render_text(outcome.plan, outcome.status, outcome.state_uri, extra, cut))
    return 0
