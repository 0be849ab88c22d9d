"""``aion-ingest ledger NAME``: what a recurring import's ledger holds.

Prints a summary (objects, bytes, runs, last run), or with ``--export FILE.csv`` writes
key → image id for every recorded object, or with ``--rebuild-from RUN_ID...`` makes the
ledger anew from those runs' outcomes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from ingest.errors import ConfigError
from ingest.ledger.entries import check_name
from ingest.ledger.merge import rebuild
from ingest.ledger.store import Ledger
from ingest.ledger.summary import export_csv, summarize
from ingest.ledger.view import LedgerView
from ingest.orchestration.local import default_state_uri
from ingest.planning.runid import check_run_id
from ingest.settings import Settings
from ingest.state import open_state


async def ledger_command(
    name: str,
    settings: Settings,
    *,
    export: str | None = None,
    rebuild_from: list[str] | None = None,
    as_json: bool = False,
) -> int:
    check_name(name)
    for run_id in rebuild_from or []:
        check_run_id(run_id)
    if export and rebuild_from:
        raise ConfigError("give --export or --rebuild-from, not both")
    state_uri = settings.state or default_state_uri()
    async with open_state(state_uri, settings) as store:
        ledger = Ledger(store, name)
        with tempfile.TemporaryDirectory(prefix="aion-ledger-") as tmp:
            if rebuild_from:
                _, objects = await rebuild(store, name, rebuild_from, Path(tmp))
                print(f"ledger {name}: rebuilt from {len(rebuild_from)} runs, {objects:,} objects")
                return 0
            manifest, etag = await ledger.read()
            if etag is None:
                raise ConfigError(
                    f"no ledger {name!r} in {store.uri}; check the name and --state "
                    "(a ledger is made by the first run planned with --ledger NAME)"
                )
            manifest, view = await ledger.fetch(Path(tmp))
            if export:
                rows = _export(view, export)
                print(f"ledger {name}: {rows:,} objects written to {export}")
                return 0
            summary = summarize(manifest, view)
    print(json.dumps(summary.to_json(), indent=1) if as_json else summary.text())
    return 0


def _export(view: LedgerView, target: str) -> int:
    """Write the export to ``target`` (``-``: standard output); how many rows."""
    if target == "-":
        return export_csv(view, sys.stdout)
    path = Path(target)
    if not path.parent.is_dir():
        raise ConfigError(f"--export {target}: folder {path.parent} does not exist; create it")
    with open(path, "w", encoding="utf-8", newline="") as out:
        return export_csv(view, out)
