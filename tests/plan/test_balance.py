"""The shard cut (pure): every item in exactly one shard, within the stated bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.planning.balance import Cost, assign, water_level

sizes_st = st.lists(
    st.one_of(st.integers(0, 10_000), st.integers(0, 10_000_000)), min_size=0, max_size=300
)
cost_st = st.builds(
    Cost,
    per_item=st.floats(1, 100_000),
    allowance=st.floats(1_000_000, 1e9),
)


@settings(max_examples=300, deadline=None)
@given(sizes=sizes_st, wanted=st.one_of(st.none(), st.integers(1, 40)), cost=cost_st)
def test_every_shard_is_within_the_bound(sizes: list[int], wanted: int | None, cost: Cost) -> None:
    shards = assign(sizes, wanted, cost)
    assert len(shards) == len(sizes)
    if not sizes:
        return
    n = max(shards) + 1
    assert n <= len(sizes)
    if wanted is not None:
        assert n <= wanted
    costs = [cost.of(s) for s in sizes]
    per_shard = [0.0] * n
    for c, j in zip(costs, shards, strict=True):
        per_shard[j] += c
    # The bound of the module docstring: at most C / n + 2 * (largest item cost).
    bound = sum(costs) / n + 2 * max(costs)
    assert max(per_shard) <= bound * (1 + 1e-9)


@settings(max_examples=300, deadline=None)
@given(sizes=sizes_st, cost=cost_st)
def test_derived_shards_respect_the_maxima(sizes: list[int], cost: Cost) -> None:
    """With the count from the maxima, every shard fits its allowance (both maxima)
    unless a file costs more than half a shard."""
    shards = assign(sizes, None, cost)
    if not sizes or max(cost.of(s) for s in sizes) > cost.allowance / 2:
        return
    per_shard: dict[int, float] = {}
    for s, j in zip(sizes, shards, strict=True):
        per_shard[j] = per_shard.get(j, 0.0) + cost.of(s)
    assert max(per_shard.values()) <= cost.allowance * (1 + 1e-9)


def test_big_files_are_spread_one_per_shard() -> None:
    cost = Cost(per_item=1.0, allowance=1e12)
    sizes = [1] * 100 + [10_000] * 3 + [1] * 100
    shards = assign(sizes, 4, cost)
    assert sorted(shards[100:103]) == [0, 1, 2]  # one big file per shard, none piled
    assert shards.count(3) > 0


def test_water_level_fills_around_the_big_items() -> None:
    # Shards hold bigs 10 and 2; total cost 20 over 3 shards: level 5 (10 + 5 + 5).
    assert water_level(20.0, [10.0, 2.0], 3) == 5.0
    assert water_level(9.0, [], 3) == 3.0


def test_uniform_items_are_cut_evenly() -> None:
    shards = assign([100] * 1000, 8, Cost(per_item=10.0, allowance=1e9))
    counts = [shards.count(j) for j in range(8)]
    assert counts == [125] * 8
    assert shards == sorted(shards)  # contiguous runs in listing order


def test_equal_items_as_many_as_shards_each_get_one() -> None:
    """Found by hypothesis: three equal costs summed and divided by 3 round below each
    cost, so every item counted as "big", one per shard, and the level divided by zero."""
    cost = Cost(per_item=87381.58070344277, allowance=1_000_000.0)
    assert sorted(assign([0, 0, 0], 3, cost)) == [0, 1, 2]
