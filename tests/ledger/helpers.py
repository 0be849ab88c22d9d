"""Entries and a fake clock for the ledger tests."""

from __future__ import annotations

import datetime as dt

from ingest.ledger.entries import Entry


def entry(
    key: str, etag: str = "e1", *, size: int = 10, run: str = "r1", bucket: str = "b"
) -> Entry:
    return Entry(
        bucket, key, size, etag, None, f"img-{key}-{etag}", run, "2026-11-29T00:00:00+00:00"
    )


def lines(entries: list[Entry]) -> list[str]:
    return [e.to_line() for e in sorted(entries, key=lambda e: e.sort_key)]


class FakeClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)
