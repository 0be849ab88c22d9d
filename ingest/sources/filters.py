"""Which listed objects become planned items, and why the others did not.

A :class:`Filter` is built once from :class:`~ingest.settings.FilterSettings`; the planner
asks ``reason(item)`` for every listed item: ``None`` keeps it, a reason string drops it
and is counted in ``counts`` (every filtered item is counted by reason, for the plan and
the report). Checks run in this order and the first that fails names the reason:

==================== ==========================================================
``directory_marker`` a key ending in ``/`` (an S3 console "folder"), never a file
``not_included``     include patterns are set and the key matches none of them
``excluded_glob``    the key matches an exclude pattern
``unsupported_format`` the extension is not one the API accepts (case-insensitive)
``too_small``        size < min_size
``too_large``        size > max_size
``modified_before``  last modified before ``modified_after`` (older than wanted)
``modified_after``   last modified at or after ``modified_before`` (newer than wanted)
==================== ==========================================================

Glob patterns (include/exclude), matched case-sensitively like S3 keys:

- ``*`` any characters except ``/``; ``?`` one character except ``/``; ``[abc]``,
  ``[a-z]``, ``[!abc]`` character classes; ``**`` any characters including ``/``, and
  ``**/`` zero or more whole directories (``a/**/b.jpg`` matches ``a/b.jpg``).
- A pattern without ``/`` matches the key's last part at any depth: ``*.jpg`` matches
  ``x.jpg`` and ``a/b/x.jpg`` (as rclone and .gitignore do).
- A pattern with ``/`` matches the whole key from its start; a leading ``/`` is ignored;
  a trailing ``/`` means everything under it: ``raw/`` is ``raw/**``.

An item without ``last_modified`` (some manifests) passes the time checks: nothing says it
is out of range. Manifest sources fill it by HEAD when a time filter is set.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import itertools
import operator
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ingest.errors import ConfigError
from ingest.items import SUPPORTED_EXTENSIONS, Item, Listed, Outcome, PlainBatch, is_supported
from ingest.settings import FilterSettings


class Reason(enum.StrEnum):
    """Why a listed object was not planned, in the order the checks run."""

    DIRECTORY_MARKER = "directory_marker"
    NOT_INCLUDED = "not_included"
    EXCLUDED_GLOB = "excluded_glob"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TOO_SMALL = "too_small"
    TOO_LARGE = "too_large"
    MODIFIED_BEFORE = "modified_before"
    MODIFIED_AFTER = "modified_after"


def outcome_for(reason: str) -> Outcome:
    """The report outcome of an item dropped for ``reason``."""
    if reason == Reason.UNSUPPORTED_FORMAT:
        return Outcome.SKIPPED_UNSUPPORTED
    return Outcome.SKIPPED_FILTERED


# --- parsers for command-line-ish values ---------------------------------------------

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str, setting: str = "INGEST_FILTERS__MIN_SIZE") -> int:
    """Bytes from ``1048576``, ``"10MB"`` (10**7), ``"1GiB"`` (2**30), ``"1.5 KB"``.

    Units are case-insensitive; KB/MB/GB/TB are powers of 1000 and KiB/MiB/GiB/TiB powers
    of 1024. A bare ``K``/``M``/``G`` is refused because people mean either.
    """
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"invalid size for {setting}: {value} is negative; use 0 or more")
        return value
    m = _SIZE.match(value)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise ConfigError(
            f"invalid size for {setting}: {value!r}; use bytes or a number with KB, MB, GB, "
            "TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. 10MB"
        )
    return int(float(m.group(1)) * _UNITS[unit])


def parse_timestamp(value: str, setting: str = "INGEST_FILTERS__MODIFIED_AFTER") -> dt.datetime:
    """An aware UTC datetime from ISO 8601 (``2024-05-01``, ``2024-05-01T12:00``,
    ``2024-05-01T12:00:00+02:00``, ``...Z``); a time without a zone is taken as UTC."""
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"invalid timestamp for {setting}: {value!r}; use ISO 8601, e.g. "
            "2024-05-01 or 2024-05-01T12:00:00Z (no zone means UTC)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


# --- globs -------------------------------------------------------------------------


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """The compiled form of one glob (semantics in the module docstring).

    Patterns without ``/`` are compiled to match a key's last part; :class:`Glob` decides
    which part of the key to give it.
    """
    if pattern.endswith("/"):
        pattern += "**"
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise ConfigError(f"invalid glob pattern {pattern!r}: {exc}; fix the pattern") from None


class Glob:
    """One include/exclude pattern."""

    def __init__(self, pattern: str) -> None:
        if not pattern.strip():
            raise ConfigError("empty glob pattern in INGEST_FILTERS__INCLUDE/EXCLUDE; remove it")
        self.pattern = pattern
        body = pattern.lstrip("/")
        self.whole_key = "/" in body
        self.regex = glob_to_regex(body)

    def matches(self, key: str) -> bool:
        target = key if self.whole_key else key.rsplit("/", 1)[-1]
        return self.regex.fullmatch(target) is not None

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"


def _any(globs: Iterable[Glob], key: str) -> bool:
    return any(g.matches(key) for g in globs)


class Filter:
    """The filters of a run, with a count of dropped items per reason."""

    def __init__(
        self,
        *,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        min_size: int | str | None = None,
        max_size: int | str | None = None,
        modified_after: str | dt.datetime | None = None,
        modified_before: str | dt.datetime | None = None,
        supported_only: bool = True,
    ) -> None:
        self.include = [Glob(p) for p in include]
        self.exclude = [Glob(p) for p in exclude]
        self.min_size = None if min_size is None else parse_size(min_size)
        self.max_size = (
            None if max_size is None else parse_size(max_size, "INGEST_FILTERS__MAX_SIZE")
        )
        self.modified_after = _when(modified_after, "INGEST_FILTERS__MODIFIED_AFTER")
        self.modified_before = _when(modified_before, "INGEST_FILTERS__MODIFIED_BEFORE")
        self.supported_only = supported_only
        low, high = self.min_size, self.max_size
        if low is not None and high is not None and low > high:
            raise ConfigError(
                f"INGEST_FILTERS__MIN_SIZE ({low}) is above INGEST_FILTERS__MAX_SIZE ({high}); "
                "nothing could pass"
            )
        after, before = self.modified_after, self.modified_before
        if after is not None and before is not None and after >= before:
            raise ConfigError(
                "INGEST_FILTERS__MODIFIED_AFTER is not before INGEST_FILTERS__MODIFIED_BEFORE; "
                "nothing could pass"
            )
        self.counts: collections.Counter[str] = collections.Counter()
        # Only the format is checked (the defaults): a batch's keys are judged inline.
        self._format_only = supported_only and not (
            self.include
            or self.exclude
            or self.min_size is not None
            or self.max_size is not None
            or self.modified_after
            or self.modified_before
        )

    @classmethod
    def from_settings(cls, settings: FilterSettings) -> Filter:
        return cls(
            include=settings.include,
            exclude=settings.exclude,
            min_size=settings.min_size,
            max_size=settings.max_size,
            modified_after=settings.modified_after,
            modified_before=settings.modified_before,
            supported_only=settings.supported_only,
        )

    @property
    def needs_last_modified(self) -> bool:
        """Whether a time filter is set (manifest sources then HEAD to learn the time)."""
        return self.modified_after is not None or self.modified_before is not None

    def check(self, item: Item) -> Reason | None:
        """Why ``item`` is dropped, or None to keep it. Pure: counts nothing."""
        return self.check_of(item.key, item.size, item.last_modified)

    def check_of(self, key: str, size: int, last_modified: str | None) -> Reason | None:
        """:meth:`check` of an object given by its fields (a plain listed row, no Item)."""
        if key.endswith("/"):
            return Reason.DIRECTORY_MARKER
        if self.include and not _any(self.include, key):
            return Reason.NOT_INCLUDED
        if self.exclude and _any(self.exclude, key):
            return Reason.EXCLUDED_GLOB
        if self.supported_only and not is_supported(key):
            return Reason.UNSUPPORTED_FORMAT
        if self.min_size is not None and size < self.min_size:
            return Reason.TOO_SMALL
        if self.max_size is not None and size > self.max_size:
            return Reason.TOO_LARGE
        if last_modified and (self.modified_after or self.modified_before):
            when = dt.datetime.fromisoformat(last_modified)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            if self.modified_after and when < self.modified_after:
                return Reason.MODIFIED_BEFORE
            if self.modified_before and when >= self.modified_before:
                return Reason.MODIFIED_AFTER
        return None

    def reason(self, item: Item) -> str | None:
        """Why ``item`` is dropped (and count it), or None to keep it."""
        return self.reason_of(item.key, item.size, item.last_modified)

    def reason_of(self, key: str, size: int, last_modified: str | None) -> str | None:
        """:meth:`reason` of an object given by its fields (a plain listed row, no Item)."""
        why = self.check_of(key, size, last_modified)
        if why is not None:
            self.counts[why.value] += 1
        return None if why is None else why.value

    def reasons(self, rows: Sequence[Listed]) -> list[str | None] | None:
        """:meth:`reason` of each listed row (an Item or a PlainRow), counted; None when
        every row is kept (the common batch).

        The planner's way. With the default filters (the format only) a key whose last
        part has a supported extension (and does not start with a dot) is kept inline, no
        call a row; the first other row sends the batch through :meth:`reason_of`.
        """
        if self._format_only:
            if isinstance(rows, PlainBatch) and _all_supported(rows):
                return None
            for row in rows:
                key = row[1] if isinstance(row, tuple) else row.key
                dot, start = key.rfind("."), key.rfind("/") + 1
                # extension(key), inlined for its plain case
                if dot <= start or key[start] == "." or key[dot:].lower() not in _SUPPORTED:
                    break
            else:
                return None
        reasons = [
            self.reason_of(row[1], row[2], None)
            if isinstance(row, tuple)
            else self.reason_of(row.key, row.size, row.last_modified)
            for row in rows
        ]
        return None if reasons.count(None) == len(reasons) else reasons

    def describe(self) -> dict[str, Any]:
        """The effective filters, normalised, for the plan (``run.json``)."""
        return {
            "include": [g.pattern for g in self.include],
            "exclude": [g.pattern for g in self.exclude],
            "min_size": self.min_size,
            "max_size": self.max_size,
            "modified_after": _iso(self.modified_after),
            "modified_before": _iso(self.modified_before),
            "supported_only": self.supported_only,
        }


_SUPPORTED = SUPPORTED_EXTENSIONS
_SUFFIXES = tuple(SUPPORTED_EXTENSIONS)  # lower case


def _all_supported(rows: PlainBatch) -> bool:
    """Whether every key of a PlainBatch ends in a supported extension (lower case) and
    has no part starting with a dot: then each key's extension is that one. In C (maps,
    a join, a scan): no Python step a row. False sends the batch the row-by-row way."""
    keys = list(map(operator.itemgetter(1), rows))
    return "/." not in "/" + "\n/".join(keys) and all(
        map(str.endswith, keys, itertools.repeat(_SUFFIXES))
    )


def _when(value: str | dt.datetime | None, setting: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=value.tzinfo or dt.UTC).astimezone(dt.UTC)
    return parse_timestamp(value, setting)


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")
