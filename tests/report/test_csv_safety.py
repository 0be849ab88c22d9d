"""report.csv is safe to open in a spreadsheet (issue 13, point 5: OWASP CSV injection)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ingest.items import Item, ItemResult, Outcome
from ingest.planning.planner import make_plan
from ingest.report import build_report
from ingest.settings import load_settings
from ingest.state import RunLayout, open_state
from ingest.state.records import decode_shard, encode_part
from tests.plan.helpers import listing

KEYS = [
    '=HYPERLINK("http://x","y").jpg',
    "+1+1.jpg",
    "-2.jpg",
    "@SUM(A1).jpg",
    "\tx.jpg",
    "\rx.jpg",
    "plain=ok.jpg",
    "'quoted.jpg",
]


async def test_formula_like_cells_are_prefixed_with_a_quote(tmp_path: Path) -> None:
    items = [Item(key=k, size=10 + i, etag=f"e{i}") for i, k in enumerate(KEYS)]
    async with open_state(f"file://{tmp_path}/state", load_settings()) as store:
        out = await make_plan(
            listing(items),
            settings=load_settings(plan={"shards": 1}),
            source_uri="s3://src/",
            store=store,
            run_id="r-csv",
        )
        layout = RunLayout("r-csv")
        blob = await store.get(layout.shard(0, out.plan.attempt))
        assert blob is not None
        planned = list(decode_shard(blob.data))
        results = [
            ItemResult(o, i.key, i.size, Outcome.FAILED, reason="=cmd|' /C calc'!A0")
            for o, i in enumerate(planned)
        ]
        await store.create(layout.results_part(0, 0), encode_part(results))
        await build_report(store, out.plan.run_id)
    text = (tmp_path / "state" / "runs" / "r-csv" / "report.csv").read_bytes().decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    got = {r["key"] for r in rows}
    assert got == {
        '\'=HYPERLINK("http://x","y").jpg',
        "'+1+1.jpg",
        "'-2.jpg",
        "'@SUM(A1).jpg",
        "'\tx.jpg",
        "'\rx.jpg",
        "plain=ok.jpg",
        "'quoted.jpg",
    }
    assert {r["reason"] for r in rows} == {"'=cmd|' /C calc'!A0"}
