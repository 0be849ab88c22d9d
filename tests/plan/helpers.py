"""Small in-test parts for planning: a listing as an async generator, a quota checker."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable

from ingest.items import Item


async def listing(items: Iterable[Item]) -> AsyncIterator[Item]:
    for item in items:
        yield item


def items_of(sizes: Iterable[int], prefix: str = "k") -> list[Item]:
    return [Item(key=f"{prefix}/{i:06d}.jpg", size=s, etag=f"e{i}") for i, s in enumerate(sizes)]


@dataclasses.dataclass
class FakeQuota:
    """Answers quota-check like the API; records what it was asked."""

    available: int | None = None
    asked: list[int] = dataclasses.field(default_factory=list)

    @property
    def can_proceed(self) -> bool:
        return self.available is None or self.asked[-1] <= self.available

    @property
    def requested(self) -> int:
        return self.asked[-1]

    @property
    def monthly_limit(self) -> int | None:
        return None if self.available is None else 1000

    @property
    def current_usage(self) -> int | None:
        return None if self.available is None else 1000 - self.available

    @property
    def message(self) -> str | None:
        return None if self.can_proceed else f"Only {self.available} uploads left this month"

    async def __call__(self, count: int) -> FakeQuota:
        self.asked.append(count)
        return self
