"""Every listed object is accounted for: planned (report.csv) or filtered, with its reason,
in filtered.csv (issue 13, point 2)."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from ingest.items import Item
from ingest.planning.planner import make_plan
from ingest.report import build_report
from ingest.settings import load_settings
from ingest.sources import Filter
from ingest.state import open_state
from tests.plan.helpers import listing


async def test_listed_is_planned_plus_filtered_key_by_key(tmp_path: Path) -> None:
    listed = [
        Item(key="a/keep.jpg", size=500, etag="1"),
        Item(key="a/clip.mp4", size=500, etag="2"),
        Item(key="a/tiny.png", size=3, etag="3"),
        Item(key="raw/x.jpg", size=500, etag="4"),
        Item(key="=bad.mp4", size=500, etag="5"),
        Item(key="b/keep.png", size=900, etag="6"),
    ]
    settings = load_settings(plan={"shards": 2}, filters={"exclude": ["raw/"], "min_size": 10})
    item_filter = Filter.from_settings(settings.filters)
    async with open_state(f"file://{tmp_path}/state", load_settings()) as store:
        out = await make_plan(
            listing(listed), settings=settings, source_uri="x", store=store, run_id="f1",
            item_filter=item_filter,
        )  # fmt: skip
        report = await build_report(store, "f1")
    assert out.plan.filtered_csv
    assert report.filtered_csv == f"file://{tmp_path}/state/{out.plan.filtered_csv}"
    assert "filtered objects and why" in report.summary()
    data = gzip.decompress((tmp_path / "state" / out.plan.filtered_csv).read_bytes())
    filtered = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    planned = list(csv.DictReader(io.StringIO((tmp_path / "state/runs/f1/report.csv").read_text())))
    reasons = {r["key"]: r["reason"] for r in filtered}
    assert set(reasons) == {"a/clip.mp4", "a/tiny.png", "raw/x.jpg", "'=bad.mp4"}
    assert all(reasons.values())
    assert sorted(reasons.values()) == sorted(
        r for r, n in out.plan.filtered.items() for _ in range(n)
    )
    assert {r["key"] for r in planned} == {"a/keep.jpg", "b/keep.png"}
    assert len(planned) + len(filtered) == out.plan.listed == len(listed)
