"""Bytes per object that /tmp holds: the chart's tmp.sizeLimit rule of thumb.

The coordinator's /tmp (an emptyDir) holds, one after the other, the planner's spool of
the filtered listing (gzip level 1, ``ingest/planning/spool.py``) and the report's CSV
before it is uploaded (uncompressed, ``ingest/report.py``). This writes both for objects
shaped like an S3 listing (key, size, ETag, LastModified, bucket) with short and long keys
and prints bytes per object.

    .venv/bin/python bench/tmp_usage.py [--objects 200000]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import random
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from ingest.items import Item, ItemResult, Outcome
from ingest.planning.spool import SpoolWriter
from ingest.report import _csv_row

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def keys(rng: random.Random) -> dict[str, Callable[[int], str]]:
    return {
        "short keys": lambda i: f"photos/2024/{i % 12 + 1:02d}/IMG_{i:07d}.jpg",
        "long keys": lambda i: (
            f"customers/acme-corp/uploads/{rng.choice(['field', 'lab', 'studio'])}-team/"
            f"{i % 365}/camera {i % 7}/2024-{i % 12 + 1:02d}-{i % 28 + 1:02d} "
            f"shot {rng.getrandbits(40):x} ünïcode.jpeg"
        ),
    }


def item(i: int, key: str, rng: random.Random) -> Item:
    modified = T0 + dt.timedelta(seconds=rng.randint(0, 30_000_000))
    return Item(
        key=key,
        size=rng.randint(10_000, 20_000_000),
        etag=hashlib.md5(str(i).encode()).hexdigest(),  # an S3 ETag's shape
        last_modified=modified.isoformat().replace("+00:00", "Z"),
        bucket="photos-prod",
    )


def spool_bytes(n: int, key: Callable[[int], str], rng: random.Random) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spool.jsonl.gz"
        writer = SpoolWriter(path, 1024.0, 1e12)
        for i in range(n):
            writer.add(item(i, key(i), rng))
        writer.close()
        return path.stat().st_size


def report_bytes(n: int, key: Callable[[int], str], rng: random.Random) -> int:
    buf = io.StringIO()
    writer = csv.writer(buf)
    for i in range(n):
        it = item(i, key(i), rng)
        image_id = str(uuid.UUID(int=rng.getrandbits(128)))
        result = ItemResult(i % 5000, it.key, it.size, Outcome.UPLOADED, image_id, None, 200, 1)
        writer.writerow(_csv_row(i // 5000, it, result))
    return len(buf.getvalue().encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200_000)
    n = parser.parse_args().objects
    rng = random.Random(7)
    for label, key in keys(rng).items():
        spool = spool_bytes(n, key, rng)
        report = report_bytes(n, key, rng)
        print(
            f"{label}: {n:,} objects; spool {spool / n:.1f} B/object, "
            f"report.csv {report / n:.1f} B/object; 1 million objects need "
            f"{max(spool, report) / n:.0f} MB of /tmp"
        )


if __name__ == "__main__":
    main()
