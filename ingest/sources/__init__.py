"""Sources: where items come from (S3, manifests, local folders). See :mod:`.base`.

:func:`open_source` picks the source from the URI, by one rule:

1. If the URI's last path part names a manifest, it is a manifest (in S3 or local):
   ``*.csv`` / ``*.csv.gz`` (CSV, as S3 Batch Operations), ``*.jsonl`` / ``*.ndjson`` (+
   ``.gz``) (JSON Lines), ``manifest.json`` (an S3 Inventory manifest).
2. Otherwise ``s3://bucket/prefix`` lists that prefix.
3. Otherwise (``file:///path`` or a plain path) it is a local folder.

To list an S3 prefix whose last part looks like a manifest name, end it with ``/``
(``s3://bucket/exports.csv/``).

Every source has ``problems`` (:class:`~.records.Problems`): the lines or files it skipped,
counted, with the first examples, for the plan and the report.
"""

from __future__ import annotations

from ingest.settings import SourceSettings
from ingest.sources.base import Source
from ingest.sources.filters import Filter, Reason, outcome_for, parse_size, parse_timestamp
from ingest.sources.records import Problem, Problems

_MANIFEST_SUFFIXES = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def manifest_kind(uri: str) -> str | None:
    """``"csv"``, ``"jsonl"``, ``"inventory"``, or None when the URI names no manifest."""
    name = uri.rstrip("?#").rsplit("/", 1)[-1].lower()
    if name == "manifest.json":
        return "inventory"
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    for suffix, kind in _MANIFEST_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def open_source(
    uri: str, settings: SourceSettings, *, readers: int = 0, need_times: bool = False
) -> Source:
    """The source a URI names (rule in the module docstring). Raises ConfigError for a
    malformed URI or a missing local folder; S3 is not contacted until ``list``/``open``.

    ``readers``: how many objects the caller opens at once (sizes the S3 connection pool);
    ``need_times``: a time filter is set, so manifest rows need a last-modified time."""
    from ingest.sources.local import LocalSource
    from ingest.sources.manifest import ManifestSource
    from ingest.sources.s3 import S3Source

    kind = manifest_kind(uri)
    if kind is not None:
        return ManifestSource(uri, kind, settings, readers=readers, need_times=need_times)
    if uri.startswith("s3://"):
        return S3Source(uri, settings, readers=readers)
    return LocalSource(uri)


def absolute_uri(uri: str) -> str:
    """The source as a plan records it: a local path made absolute (a ``file:`` URI stays
    one), so ``resume`` works from any directory; S3 URIs as given."""
    if uri.startswith("s3://") or ("://" in uri and not uri.startswith("file:")):
        return uri
    from ingest.s3.uris import path_from_uri

    path = path_from_uri(uri, "source")
    return path.as_uri() if uri.startswith("file:") else str(path)


def problems_of(source: Source) -> Problems:
    """What ``source`` skipped (every source has ``problems``; kept for the planner's call)."""
    return source.problems


__all__ = [
    "Filter",
    "Problem",
    "Problems",
    "Reason",
    "Source",
    "absolute_uri",
    "manifest_kind",
    "open_source",
    "outcome_for",
    "parse_size",
    "parse_timestamp",
    "problems_of",
]
