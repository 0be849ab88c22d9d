"""How many shards, and which shard each item goes to: balanced by bytes and by count.

One number balances both. Each item *costs* its size plus a fixed per-file overhead
``K = max_bytes_per_shard / max_items_per_shard`` bytes (5 MiB by default): a worker's time
grows with bytes (bandwidth) and with files (the API's request budget), and with this K a
shard at its byte maximum and a shard at its file maximum cost the same, the *allowance*
``A = max_bytes_per_shard``. A shard of cost at most A is within both maxima.

The cut, deterministic and streaming (only the few big items are held in memory):

1. ``C`` = total cost, ``n`` shards. Items costing more than ``C / n`` are *big*. Fewer than
   n exist (their costs add up to less than C), so each goes alone to its own shard,
   in listing order: big files are spread, never piled.
2. The other (*small*) items keep their listing order and are cut into contiguous runs
   by water-filling: a level ``L`` with ``sum_j max(L, big_j) = C``; shard j takes a run
   of small items of cost ``max(0, L - big_j)``, an item belonging to the run its cost
   midpoint falls in.

The bound (tested with hypothesis): every shard's cost is at most
``max(L, its big item's cost) + c_small`` where ``c_small`` is the largest small item's
cost, and ``L <= C / n``; so at most ``C / n + 2 * c_max``. When the count is derived from
the maxima, ``n = ceil(C / (A - c_half))`` with ``c_half`` the largest cost not above A/2,
so a shard holds at most ``max_items_per_shard`` files and ``max_bytes_per_shard`` bytes
unless a single file costs more than half a shard.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from ingest.settings import PlanSettings


@dataclasses.dataclass(frozen=True)
class Cost:
    """The cost model of a plan: one item costs ``size + per_item`` bytes-equivalent."""

    per_item: float
    allowance: float

    @classmethod
    def from_settings(cls, settings: PlanSettings) -> Cost:
        max_bytes = settings.max_bytes_per_shard
        return cls(per_item=max_bytes / settings.max_items_per_shard, allowance=float(max_bytes))

    def of(self, size: int) -> float:
        return size + self.per_item


def shard_count(
    items: int, total_bytes: int, half_max_cost: float, cost: Cost, requested: int | None
) -> int:
    """The number of shards: ``requested``, or the fewest that keep shards within the
    maxima (see the module docstring); never more than there are items, 0 for none."""
    if items == 0:
        return 0
    if requested is not None:
        return min(requested, items)
    total = total_bytes + items * cost.per_item
    room = max(cost.allowance - half_max_cost, cost.allowance / 2)
    return max(1, min(items, math.ceil(total / room)))


def water_level(total_cost: float, big_costs: Sequence[float], shards: int) -> float:
    """The level L with ``sum over shards of max(L, big) = total_cost`` (bigs on the first
    shards, 0 elsewhere)."""
    ordered = sorted(big_costs, reverse=True)
    above = 0.0
    for k in range(len(ordered) + 1):
        if k == shards:  # every shard opens with a big item: rounding can make n equal
            return ordered[-1]  # items each "above" total / n; no room for small ones
        level = (total_cost - above) / (shards - k)
        if k == len(ordered) or ordered[k] <= level:
            return level
        above += ordered[k]
    raise AssertionError("unreachable: fewer big items than shards")


class Cutter:
    """Assigns small items, in listing order, to shards (see the module docstring)."""

    def __init__(self, total_cost: float, big_costs: Sequence[float], shards: int) -> None:
        self.level = water_level(total_cost, big_costs, shards)
        bigs = list(big_costs) + [0.0] * (shards - len(big_costs))
        self.ends: list[float] = []
        end = 0.0
        for b in bigs:
            end += max(0.0, self.level - b)
            self.ends.append(end)
        self._last = shards - 1
        self._shard = 0
        self._done = 0.0  # cost of the small items already assigned

    def shard_of(self, item_cost: float) -> int:
        """The shard of the next small item; non-decreasing over the listing."""
        middle = self._done + item_cost / 2
        self._done += item_cost
        while self._shard < self._last and middle >= self.ends[self._shard]:
            self._shard += 1
        return self._shard


def assign(sizes: Sequence[int], shards_wanted: int | None, cost: Cost) -> list[int]:
    """The shard of every item (in memory: for tests and small listings; the planner does
    the same in a streaming way). Mirrors :mod:`.planner`'s two passes."""
    costs = [cost.of(s) for s in sizes]
    total = sum(costs)
    half = max((c for c in costs if c <= cost.allowance / 2), default=0.0)
    n = shard_count(len(sizes), sum(sizes), half, cost, shards_wanted)
    if n == 0:
        return []
    threshold = total / n
    result = [-1] * len(sizes)
    big_costs: list[float] = []
    for i, c in enumerate(costs):
        if c > threshold:
            result[i] = len(big_costs)
            big_costs.append(c)
    cutter = Cutter(total, big_costs, n)
    for i, c in enumerate(costs):
        if result[i] < 0:
            result[i] = cutter.shard_of(c)
    return result
