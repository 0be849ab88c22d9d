"""The anti-join and the external sort against plain in-memory oracles (hypothesis)."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.items import Item, Listed, PlainBatch, item_of
from ingest.ledger.entries import Entry, sort_key
from ingest.ledger.join import AntiJoin, Status, classify
from ingest.ledger.lines import gzip_lines
from ingest.ledger.sorting import ExternalSorter
from ingest.ledger.view import LedgerView

KEYS = st.one_of(
    st.text(alphabet="ab\t\n\\é/\x00", min_size=1, max_size=4),
    # keys spelled like another key's escaped ledger field ("\\t" and a tab, ...)
    st.text(alphabet="\\tnr\t\n\r", min_size=1, max_size=3),
)
BUCKETS = st.sampled_from([None, "b1", "b2"])
ETAGS = st.sampled_from(["e1", "e2", None, "", "a\tb", "a", "x\\"])
SIZES = st.integers(0, 2)
ITEMS = st.builds(Item, key=KEYS, size=SIZES, etag=ETAGS, bucket=BUCKETS)


def write_view(workdir: Path, segments: list[list[Entry]]) -> LedgerView:
    files = []
    for i, seg in enumerate(segments):
        by_key = {e.sort_key: e for e in seg}  # one line per key within a segment
        path = workdir / f"seg-{i}.gz"
        path.write_bytes(gzip_lines(by_key[k].to_line() for k in sorted(by_key)))
        files.append(path)
    return LedgerView(files)


def oracle(segments: list[list[Entry]], item: Item) -> Status:
    known: dict[str, Entry] = {}
    for seg in segments:
        for e in seg:
            known[e.sort_key] = e
    e = known.get(sort_key(item.bucket, item.key))
    if e is None:
        return Status.NEW
    same = e.size == item.size and e.etag == (item.etag or None)
    return Status.UNCHANGED if same else Status.CHANGED


def as_entry(item: Item, run: str) -> Entry:
    # version "b": the line "a<TAB>b" must not pass for the ETag "a<TAB>b"
    return Entry(item.bucket, item.key, item.size, item.etag or None, "b", "img", run, "t")


@settings(max_examples=150, deadline=None)
@given(
    segments=st.lists(st.lists(ITEMS, max_size=12), max_size=4),
    listing=st.lists(ITEMS, max_size=30),
    presorted=st.booleans(),
    chunk_rows=st.integers(1, 5),
)
def test_classify_matches_a_dict(
    segments: list[list[Item]], listing: list[Item], presorted: bool, chunk_rows: int
) -> None:
    entries = [[as_entry(i, f"r{n}") for i in seg] for n, seg in enumerate(segments)]
    if presorted:
        listing = sorted(listing, key=lambda i: sort_key(i.bucket, i.key))
    with tempfile.TemporaryDirectory() as tmp:
        view = write_view(Path(tmp), entries)
        got = list(classify(listing, view, Path(tmp), chunk_rows=chunk_rows))
    want = [(item, oracle(entries, item)) for item in listing]
    assert Counter(got) == Counter(want)
    if presorted:
        assert got == want  # in order: answered as they come, nothing set aside


# Plain rows as a CSV manifest makes them: a bucket, a size and a non-empty ETag always.
PLAIN = st.tuples(
    st.sampled_from(["b1", "b2"]), KEYS, SIZES, st.sampled_from(["e1", "e2", "a\tb", "a", "x\\"])
)


@settings(max_examples=150, deadline=None)
@given(
    segments=st.lists(st.lists(ITEMS, max_size=12), max_size=4),
    listing=st.lists(st.one_of(ITEMS, PLAIN), max_size=30),
    presorted=st.booleans(),
    changed=st.sampled_from(["upload", "skip"]),
    cuts=st.lists(st.integers(1, 7), max_size=6),
)
def test_add_batch_answers_as_add_does(
    segments: list[list[Item]],
    listing: list[Listed],
    presorted: bool,
    changed: Literal["upload", "skip"],
    cuts: list[int],
) -> None:
    """Plain rows and Items mixed, in batches cut anywhere: the same rows planned, the
    same set aside (and answered later), the same counts as :meth:`AntiJoin.add` of each
    row's Item; unchanged plain rows take the inlined path when they come in order."""
    entries = [[as_entry(i, f"r{n}") for i in seg] for n, seg in enumerate(segments)]
    if presorted:
        listing = sorted(listing, key=lambda r: sort_key(item_of(r).bucket, item_of(r).key))
    _assert_batches_answer_as_add(entries, listing, changed, cuts, lambda rows: rows)


def _assert_batches_answer_as_add(
    entries: list[list[Entry]],
    listing: list[Listed],
    changed: Literal["upload", "skip"],
    cuts: list[int],
    batch: Callable[[list[Listed]], list[Listed]],
) -> None:
    """:meth:`AntiJoin.add_batch` of ``listing`` cut at ``cuts`` (each piece made a batch
    by ``batch``) plans, sets aside and counts as :meth:`AntiJoin.add` of each row's Item."""
    with tempfile.TemporaryDirectory() as tmp:
        view = write_view(Path(tmp), entries)
        (Path(tmp) / "one").mkdir()
        (Path(tmp) / "batched").mkdir()
        one = AntiJoin(view, Path(tmp) / "one", changed=changed, chunk_rows=3)
        want = [item_of(r) for r in listing if one.add(item_of(r)) in one.planned]
        want_later = list(one.deferred())
        batched = AntiJoin(view, Path(tmp) / "batched", changed=changed, chunk_rows=3)
        got: list[Item] = []
        at = 0
        for cut in [*cuts, len(listing)]:
            got += [item_of(r) for r in batched.add_batch(batch(listing[at : at + cut]))]
            at += cut
        got_later = list(batched.deferred())
    assert got == want
    assert got_later == want_later
    assert batched.counts == one.counts
    assert sum(one.counts.values()) == len(listing)


def _tabbed(rows: list[Listed]) -> list[Listed]:
    """``rows`` as a PlainBatch when every one may be in one (PlainBatch's rules), else
    as they are."""
    plain = [r for r in rows if isinstance(r, tuple)]
    if len(plain) < len(rows) or not all(
        all(" " <= c != "\\" for c in b + k) and e and not any(c.isspace() or c == "\\" for c in e)
        for b, k, _, e in plain
    ):
        return rows
    return PlainBatch(plain, [f"{b}\t{k}\t{size}\t{e}\t" for b, k, size, e in plain])


# Keys a PlainBatch may hold, and some that sort among them as texts would not (a control
# character, a backslash, "\x00" after the same stem): items with those go between.
BATCH_KEYS = st.text(alphabet="ab/ é~", min_size=1, max_size=3) | KEYS
BATCH_ITEMS = st.builds(Item, key=BATCH_KEYS, size=SIZES, etag=ETAGS, bucket=BUCKETS)
BATCH_PLAIN = st.tuples(
    st.sampled_from(["b1", "b2", "b1 "]),
    BATCH_KEYS,
    SIZES,
    st.sampled_from(["e1", "e2", "a", "\x01", "a\tb", "x\\"]),
)


@settings(max_examples=300, deadline=None)
@given(
    segments=st.lists(st.lists(BATCH_ITEMS, max_size=12), max_size=3),
    known=st.lists(BATCH_PLAIN, max_size=12),
    listing=st.lists(st.one_of(BATCH_PLAIN, BATCH_PLAIN, BATCH_ITEMS), max_size=30),
    order=st.sampled_from(["sorted", "as drawn", "sorted, a few swapped"]),
    changed=st.sampled_from(["upload", "skip"]),
    cuts=st.lists(st.integers(1, 9), max_size=6),
)
def test_plain_batches_answer_as_add_does(
    segments: list[list[Item]],
    known: list[tuple[str, str, int, str]],
    listing: list[Listed],
    order: str,
    changed: Literal["upload", "skip"],
    cuts: list[int],
) -> None:
    """PlainBatches (rows tested against the ledger's lines a window at a time, by their
    texts) mixed with ordinary batches: the same rows planned, set aside and counted as
    :meth:`AntiJoin.add` of each row's Item. The ledger knows many of the listed rows
    (unchanged runs), keys twice listed, out of order, or holding characters that sort
    below a tab come between them."""
    segments = [*segments, [item_of(r) for r in known + listing[::2] if isinstance(r, tuple)]]
    entries = [[as_entry(i, f"r{n}") for i in seg] for n, seg in enumerate(segments)]
    if order != "as drawn":
        listing = sorted(listing, key=lambda r: sort_key(item_of(r).bucket, item_of(r).key))
    if order == "sorted, a few swapped" and len(listing) > 3:
        listing[1], listing[-2] = listing[-2], listing[1]
    _assert_batches_answer_as_add(entries, listing, changed, cuts, _tabbed)


@pytest.mark.parametrize("segments", [1, 2])
def test_plain_batches_over_a_long_ledger(tmp_path: Path, segments: int) -> None:
    """Windows of a PlainBatch across the ledger's blocks (4,096 lines a block with two
    segments), batches of 1 to 700 rows: runs of unchanged rows, new and changed ones
    between, a key listed twice; counts and planned rows as add() of each gives."""
    entries = [
        Entry("b", f"k{i:06d}", i % 5, f"e{i}", None, f"img{i}", f"r{i % segments}", "t")
        for i in range(20_000)
        if i % 97 != 3  # new
    ]
    view = write_view(tmp_path, [entries[n::segments] for n in range(segments)])
    rows: list[tuple[str, str, int, str]] = [
        ("b", f"k{i:06d}", i % 5, f"e{i}" if i % 211 else "other") for i in range(20_000)
    ]
    rows.insert(5_000, rows[4_999])  # listed twice
    (tmp_path / "one").mkdir()
    (tmp_path / "batched").mkdir()
    one = AntiJoin(view, tmp_path / "one")
    want = [r for r in rows if one.add(item_of(r)) in one.planned]
    batched = AntiJoin(view, tmp_path / "batched")
    got: list[Listed] = []
    at, size = 0, 1
    while at < len(rows):
        got += batched.add_batch(_tabbed(rows[at : at + size]))
        at, size = at + size, size * 3 % 701 + 1
    assert got == want
    assert batched.counts == one.counts
    assert one.counts[Status.UNCHANGED] > 19_000


def _both_ways(
    tmp_path: Path, view: LedgerView, batches: list[list[Listed]]
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """(planned, set aside, counts): by add() of each row's Item, and by add_batch()."""
    answers = []
    for way in ("one", "batched"):
        (tmp_path / way).mkdir()
        join = AntiJoin(view, tmp_path / way)
        if way == "one":
            rows = [item_of(r) for batch in batches for r in batch]
            planned = [r for r in rows if join.add(r) in join.planned]
        else:
            planned = [item_of(r) for batch in batches for r in join.add_batch(batch)]
        answers.append((planned, list(join.deferred()), join.counts))
    return answers[0], answers[1]


def _segment(tmp_path: Path, keys: list[str]) -> LedgerView:
    """A one-segment view with these keys' lines in this order (sorted or not)."""
    path = tmp_path / "seg.gz"
    path.write_bytes(gzip_lines(as_entry(Item(k, 1, "e", bucket="b"), "r").to_line() for k in keys))
    return LedgerView([path])


def test_a_plain_batch_row_out_of_order_is_set_aside_even_when_its_line_is_next(
    tmp_path: Path,
) -> None:
    """The order test of a PlainBatch's window, which a sorted ledger never needs (a line
    after the walk's is always after the last key): with a segment out of order, a row
    matching the next line but coming after a higher key is still set aside, as add()
    does; so is one whose last key holds a character below TAB ("a\x01" sorts after "a",
    though "a<TAB>" sorts after "a\x01<TAB>")."""
    (tmp_path / "unsorted").mkdir()
    view = _segment(tmp_path / "unsorted", ["k5", "k1"])
    rows = [_tabbed([("b", "k5", 1, "e"), ("b", "k1", 1, "e")])]
    want, got = _both_ways(tmp_path / "unsorted", view, rows)
    assert got == want
    assert want[2][Status.NEW] == 1  # k1: set aside, then not found before k5

    (tmp_path / "low").mkdir()
    view = _segment(tmp_path / "low", ["a\x01", "a"])
    batches: list[list[Listed]] = [
        [Item("a\x01", 1, "e", bucket="b")],
        _tabbed([("b", "a", 1, "e")]),
    ]
    assert isinstance(batches[1], PlainBatch)
    want, got = _both_ways(tmp_path / "low", view, batches)
    assert got == want
    assert want[2][Status.NEW] == 1


def test_a_plain_batch_leaves_its_last_key_for_the_next_batch(tmp_path: Path) -> None:
    """After a window of matches the last key is the last matched row's: a lower key in
    the next batch is set aside (answered at the end), not answered in place."""
    view = _segment(tmp_path, ["k1", "k3"])
    batches = [_tabbed([("b", "k1", 1, "e"), ("b", "k3", 1, "e")]), _tabbed([("b", "k2", 1, "e")])]
    want, got = _both_ways(tmp_path, view, batches)
    assert got == want
    assert want[0] == [] and [item.key for item, _ in want[1]] == ["k2"]


def test_counts_and_the_changed_policy(tmp_path: Path) -> None:
    view = write_view(
        tmp_path, [[as_entry(Item("a", 1, "e1"), "r1"), as_entry(Item("c", 1), "r1")]]
    )
    join = AntiJoin(view, tmp_path, changed="skip")
    statuses = [join.add(Item(k, 1, e)) for k, e in (("a", "e1"), ("b", "x"), ("c", "y"))]
    assert statuses == [Status.UNCHANGED, Status.NEW, Status.CHANGED]
    assert join.add(Item("a0", 1)) is None  # out of order: set aside
    assert [(i.key, s) for i, s in join.deferred()] == [("a0", Status.NEW)]
    assert join.counts == {Status.NEW: 2, Status.CHANGED: 1, Status.UNCHANGED: 1}
    assert [join.is_planned(s) for s in Status] == [True, False, False]
    assert AntiJoin(view, tmp_path).is_planned(Status.CHANGED)
    with pytest.raises(ValueError, match="changed must be one of"):
        AntiJoin(view, tmp_path, changed="replace")  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.text(max_size=3), st.text(alphabet="xy\t", max_size=3))),
    chunk_rows=st.integers(1, 4),
)
def test_external_sort_is_a_stable_sort(pairs: list[tuple[str, str]], chunk_rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sorter = ExternalSorter(Path(tmp), chunk_rows=chunk_rows)
        for key, line in pairs:
            sorter.add(key, line)
        assert list(sorter.sorted()) == sorted(pairs, key=lambda p: p[0])


def test_sorted_input_makes_one_run(tmp_path: Path) -> None:
    sorter = ExternalSorter(tmp_path, chunk_rows=10)
    for i in range(95):
        sorter.add(f"{i:03d}", str(i))
    assert [line for _, line in sorter.sorted()] == [str(i) for i in range(95)]
    assert sorter.runs == 1
    shuffled = ExternalSorter(tmp_path / "x", chunk_rows=10)
    (tmp_path / "x").mkdir()
    for i in reversed(range(95)):
        shuffled.add(f"{i:03d}", str(i))
    assert [line for _, line in shuffled.sorted()] == [str(i) for i in range(95)]
    assert shuffled.runs == 10


def test_an_etag_holding_a_tab_is_not_read_across_fields(tmp_path: Path) -> None:
    """The ledger line "…<TAB>1<TAB>a<TAB>b<TAB>…" (ETag a, version b) against ETag "a<TAB>b"."""
    view = write_view(tmp_path, [[as_entry(Item("k", 1, "a"), "r1")]])
    assert [s for _, s in classify([Item("k", 1, "a\tb")], view, tmp_path)] == [Status.CHANGED]
    assert [s for _, s in classify([Item("k", 1, "a")], view, tmp_path)] == [Status.UNCHANGED]


def test_a_key_spelled_like_an_escape_is_not_taken_for_it(tmp_path: Path) -> None:
    """The ledger writes a tab in a key as backslash-t: a key that *is* backslash-t is
    another object, and the one-startswith fast path must not match it."""
    known = [Item("a\tb", 1, "e"), Item("c\\d", 1, "e"), Item("n\nl", 1, "e\\")]
    view = write_view(tmp_path, [[as_entry(i, "r1") for i in known]])
    listing = [
        Item("a\\tb", 1, "e"),  # literally backslash, t: the escaped spelling of "a<TAB>b"
        Item("a\tb", 1, "e"),
        Item("c\\\\d", 1, "e"),
        Item("c\\d", 1, "e"),
        Item("n\\nl", 1, "e\\"),
        Item("n\nl", 1, "e\\"),
        Item("n\nl", 1, "e\\\\"),  # listed twice: the second with another ETag
    ]
    want = [Status.NEW, Status.UNCHANGED] * 3 + [Status.CHANGED]
    for order in (listing, sorted(listing, key=lambda i: sort_key(i.bucket, i.key))):
        got = dict(classify(order, view, tmp_path))
        assert [got[i] for i in listing] == want


def test_plain_rows_in_batches_keep_the_escape_and_step_rules(tmp_path: Path) -> None:
    """add_batch's inlined path for plain rows: a tab in an ETag or a key spelled like an
    escape never matches, and a line whose sort key was built (after a new key) is not
    skipped when the next row steps past it and the one after lands on a later line."""
    known = [Item(k, 1, e, bucket="b") for k, e in (("a\tb", "e"), ("c", "e"), ("d", "e"))]
    known.append(Item("k", 1, "a", bucket="b"))
    view = write_view(tmp_path, [[as_entry(i, "r1") for i in known]])
    rows: list[Listed] = [
        ("b", "a\\tb", 1, "e"),  # backslash, t: another object than "a<TAB>b"
        ("b", "a\tb", 1, "e"),  # unchanged (its ledger line escapes the tab)
        ("b", "b", 1, "e"),  # new: the walk builds the sort key of the line of "c"
        ("b", "c", 1, "e"),  # unchanged, the inlined step past that line
        ("b", "d", 1, "x"),  # changed: its line must still be found
        ("b", "k", 1, "a\tb"),  # the line "k<TAB>1<TAB>a<TAB>b<TAB>..." is ETag a, version b
    ]
    rows.sort(key=lambda r: sort_key(item_of(r).bucket, item_of(r).key))
    join = AntiJoin(view, tmp_path)
    planned = join.add_batch(rows)
    assert planned == [r for r in rows if r[1] in ("a\\tb", "b", "d", "k")]
    assert join.counts == {Status.NEW: 2, Status.CHANGED: 2, Status.UNCHANGED: 2}


@pytest.mark.parametrize("segments", [1, 3])
def test_a_long_ledger_is_walked_across_blocks(tmp_path: Path, segments: int) -> None:
    """Tens of thousands of long keys: the walk crosses the view's blocks (and the 1 MiB
    read blocks of a segment file); keys at S3's 1,024-byte limit are compared whole."""

    def key(i: int) -> str:
        return f"{i:06d}/" + ("k" * 1017 if i % 1000 == 7 else "x" * 90)

    entries = [
        Entry("b", key(i), i % 7, f"e{i}", None, f"img{i}", f"r{i % segments}", "t")
        for i in range(0, 30_000, 2)
    ]
    view = write_view(tmp_path, [entries[n::segments] for n in range(segments)])
    listing = [
        Item(key(i), i % 7, f"e{i}" if i % 10 else "other", bucket="b") for i in range(30_000)
    ]
    got = Counter(s for _, s in classify(listing, view, tmp_path))
    assert got == {Status.NEW: 15_000, Status.CHANGED: 3_000, Status.UNCHANGED: 12_000}


def test_file_names_that_are_not_utf8_round_trip(tmp_path: Path) -> None:
    """A local file name with bytes that are not UTF-8 is a key with lone surrogates
    (os.fsdecode): the ledger segment and the external sort's run files keep it."""
    odd = "photo-\udcff\udce9.jpg"
    view = write_view(tmp_path, [[as_entry(Item(odd, 3, "e"), "r1")]])
    assert [e.key for e in view.entries()] == [odd]
    listing = [Item("z.jpg", 1, "e"), Item(odd, 3, "e"), Item("a\udcff", 1)]
    got = list(classify(listing, view, tmp_path, chunk_rows=1))  # out of order: spilled
    assert [(i.key, s) for i, s in got] == [
        ("z.jpg", Status.NEW),
        ("a\udcff", Status.NEW),
        (odd, Status.UNCHANGED),
    ]
