"""Filters: every reason, glob semantics, size and timestamp parsing, counting."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ingest.errors import ConfigError
from ingest.items import Item, Listed, Outcome, PlainBatch, item_of
from ingest.settings import FilterSettings
from ingest.sources.filters import Filter, Glob, outcome_for, parse_size, parse_timestamp


def item(key: str, size: int = 10, modified: str | None = "2024-06-01T00:00:00Z") -> Item:
    return Item(key=key, size=size, last_modified=modified)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("*.jpg", "a.jpg", True),
        ("*.jpg", "deep/er/a.jpg", True),  # no "/" in the pattern: the last part, any depth
        ("*.jpg", "a.JPG", False),  # case-sensitive, like S3 keys
        ("*.jpg", "a.jpg.txt", False),
        ("photos/*.jpg", "photos/a.jpg", True),
        ("photos/*.jpg", "photos/x/a.jpg", False),  # * stops at "/"
        ("photos/*.jpg", "other/photos/a.jpg", False),  # anchored at the key's start
        ("/photos/*.jpg", "photos/a.jpg", True),  # a leading "/" is ignored
        ("photos/**", "photos/x/y/a.jpg", True),
        ("photos/**/*.png", "photos/a.png", True),  # **/ matches zero directories
        ("photos/**/*.png", "photos/x/y/a.png", True),
        ("raw/", "raw/x/y.gif", True),  # a trailing "/" means everything under it
        ("raw/", "rawer/y.gif", False),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("[ab].md", "b.md", True),
        ("[!ab].md", "b.md", False),
        ("[!ab].md", "c.md", True),
        ("my file (1).pdf", "dir/my file (1).pdf", True),  # regex characters are literal
        ("ünï/*.jpg", "ünï/ç.jpg", True),
        ("[unclosed.jpg", "[unclosed.jpg", True),  # an unclosed "[" is a literal
    ],
)
def test_glob_semantics(pattern: str, key: str, expected: bool) -> None:
    assert Glob(pattern).matches(key) is expected


def test_every_reason_in_order_and_counted() -> None:
    f = Filter(
        include=["keep/**", "top.jpg"],
        exclude=["**/private/**"],
        min_size="1KB",
        max_size="1MiB",
        modified_after="2024-01-01",
        modified_before="2025-01-01T00:00:00+00:00",
    )
    cases = {
        "keep/dir/": "directory_marker",
        "elsewhere/a.jpg": "not_included",
        "keep/private/a.jpg": "excluded_glob",
        "keep/a.exe": "unsupported_format",
        "keep/small.jpg": "too_small",
        "keep/big.jpg": "too_large",
        "keep/old.jpg": "modified_before",
        "keep/new.jpg": "modified_after",
        "keep/good.JPG": None,  # the format check is case-insensitive
        "top.jpg": None,
    }
    sizes = {"keep/small.jpg": 999, "keep/big.jpg": 1024**2 + 1}
    times = {"keep/old.jpg": "2023-12-31T23:59:59Z", "keep/new.jpg": "2025-01-01T00:00:00Z"}
    for key, expected in cases.items():
        it = item(key, sizes.get(key, 5000), times.get(key, "2024-06-01T00:00:00Z"))
        assert f.reason(it) == expected, key
    assert dict(f.counts) == {r: 1 for r in cases.values() if r}
    # The bounds themselves: min/max inclusive, modified_after inclusive, before exclusive.
    assert f.check(item("keep/a.png", 1000, "2024-01-01T00:00:00Z")) is None
    assert f.check(item("keep/a.png", 1024**2, "2024-12-31T23:59:59.999Z")) is None


def test_defaults_keep_supported_files_only_and_unknown_times_pass() -> None:
    f = Filter.from_settings(FilterSettings())
    assert f.reason(item("a.pdf", 0)) is None  # 0-byte files are not filtered by default
    assert f.reason(item("a.zip")) == "unsupported_format"
    assert f.reason(item("noext")) == "unsupported_format"
    assert Filter(supported_only=False).reason(item("a.zip")) is None
    timed = Filter(modified_after="2030-01-01")
    assert timed.needs_last_modified
    assert timed.reason(item("a.jpg", modified=None)) is None


def test_from_settings_reads_env_like_values() -> None:
    s = FilterSettings(min_size="10MB", max_size=2048**3, include=["*.png"])
    f = Filter.from_settings(s)
    assert (f.min_size, f.max_size) == (10_000_000, 2048**3)
    assert f.describe()["include"] == ["*.png"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("123", 123),
        ("10MB", 10_000_000),
        ("10mb", 10_000_000),
        ("1GiB", 1024**3),
        ("1.5 KB", 1500),
        ("2TiB", 2 * 1024**4),
        ("7B", 7),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["10K", "ten", "-5", "10 XB", ""])
def test_parse_size_refuses_with_a_clear_message(text: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid size for INGEST_FILTERS__MIN_SIZE.*10MB"):
        parse_size(text)


def test_parse_timestamp_to_utc() -> None:
    utc = dt.UTC
    assert parse_timestamp("2024-05-01") == dt.datetime(2024, 5, 1, tzinfo=utc)
    assert parse_timestamp("2024-05-01T12:00:00Z") == dt.datetime(2024, 5, 1, 12, tzinfo=utc)
    assert parse_timestamp("2024-05-01T12:00:00+02:00") == dt.datetime(2024, 5, 1, 10, tzinfo=utc)
    with pytest.raises(ConfigError, match=r"INGEST_FILTERS__MODIFIED_AFTER.*ISO 8601"):
        parse_timestamp("yesterday")


def test_contradictory_bounds_and_bad_patterns_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="MIN_SIZE"):
        Filter(min_size=10, max_size=5)
    with pytest.raises(ConfigError, match="MODIFIED_AFTER is not before"):
        Filter(modified_after="2025-01-01", modified_before="2024-01-01")
    with pytest.raises(ConfigError, match="empty glob"):
        Filter(include=[" "])
    with pytest.raises(ConfigError, match="invalid glob"):
        Filter(exclude=["[z-a].jpg"])


def test_outcome_for_reason() -> None:
    assert outcome_for("unsupported_format") is Outcome.SKIPPED_UNSUPPORTED
    assert outcome_for("too_small") is Outcome.SKIPPED_FILTERED


FILTER_KEYS = st.text(alphabet="ab./JPGjpgexé", max_size=8)
FILTERS = st.sampled_from(
    [
        {},  # the defaults: the format only, judged inline
        {"supported_only": False},
        {"max_size": 5},
        {"exclude": ["b*"]},
        {"modified_after": "2024-01-01T00:00:00Z"},
    ]
)


@given(
    st.lists(
        st.one_of(
            st.builds(item, FILTER_KEYS, st.integers(0, 9)),
            st.tuples(st.just("bkt"), FILTER_KEYS, st.integers(0, 9), st.just("e")),
        ),
        max_size=8,
    ),
    FILTERS,
)
@example([("bkt", "x/..JPG", 1, "e")], {})  # no extension: dots only before it
@example([item("a/.b.jpg")], {})  # an extension
@example([("bkt", "dir/", 0, "e")], {})  # a folder marker
def test_reasons_of_a_batch_are_each_rows_reason(
    rows: list[Listed], options: dict[str, Any]
) -> None:
    """The planner's batch call (plain rows and Items; the defaults' format check inlined)
    gives each row's reason and counts the same; None when every row is kept."""
    one, batch = Filter(**options), Filter(**options)
    want = [one.reason(item_of(row)) for row in rows]
    got = batch.reasons(rows)
    assert got == (None if all(w is None for w in want) else want)
    assert batch.counts == one.counts


@given(
    st.lists(
        st.tuples(
            st.just("bkt"),
            st.tuples(
                st.text(alphabet="ab./J\né", max_size=5),
                st.sampled_from([".jpg", ".jpeg", ".md", ".JPG", ".exe", "", "/.png", "/..gif"]),
            ).map("".join),
            st.integers(0, 9),
            st.just("e"),
        ),
        max_size=8,
    ),
    FILTERS,
)
@example([("bkt", "a/.png", 1, "e")], {})  # a hidden file: no extension
@example([("bkt", ".md", 1, "e")], {})
@example([("bkt", "a/.b.jpg", 1, "e"), ("bkt", "x.jpg", 1, "e")], {})  # an extension
def test_reasons_of_a_plain_batch_are_each_rows_reason(
    rows: list[tuple[str, str, int, str]], options: dict[str, Any]
) -> None:
    """A PlainBatch's keys judged at once (each ending in a supported extension, no part
    starting with a dot) or row by row: each row's reason, the same counts."""
    one, batch = Filter(**options), Filter(**options)
    want = [one.reason(item_of(row)) for row in rows]
    got = batch.reasons(PlainBatch(rows, []))
    assert got == (None if all(w is None for w in want) else want)
    assert batch.counts == one.counts
