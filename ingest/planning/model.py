"""The plan record (``runs/<run_id>/run.json``) and the quota answer it keeps.

run.json is written last, with create-if-absent: its presence means every shard it lists
is complete. It records each shard's ETag, so a shard rewritten after the plan (a second
planner of the same run id with a different listing) is detected by whoever reads it.
"""

from __future__ import annotations

import builtins
import dataclasses
import gzip
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from ingest.errors import ConfigError
from ingest.items import Item

FORMAT_VERSION = 1


class QuotaAnswer(Protocol):
    """What ``GET /uploads/quota-check`` says (the API client's model fits this)."""

    @property
    def can_proceed(self) -> bool: ...
    @property
    def requested(self) -> int | None: ...
    @property
    def available(self) -> int | None: ...
    @property
    def monthly_limit(self) -> int | None: ...
    @property
    def current_usage(self) -> int | None: ...
    @property
    def message(self) -> str | None: ...


QuotaCheck = Callable[[int], Awaitable[QuotaAnswer]]


def quota_to_json(answer: QuotaAnswer) -> dict[str, Any]:
    return {
        "can_proceed": answer.can_proceed,
        "requested": answer.requested,
        "available": answer.available,
        "monthly_limit": answer.monthly_limit,
        "current_usage": answer.current_usage,
        "message": answer.message,
    }


@dataclasses.dataclass
class RunPlan:
    """Everything ``run.json`` says about a run."""

    run_id: str
    created_at: str
    source: str
    filters: dict[str, Any]
    settings_digest: str
    shard_items: list[int]
    shard_bytes: list[int]
    shard_etags: list[str]
    items: int
    bytes: int
    listed: int
    filtered: dict[str, int]
    skipped_records: int
    histogram: dict[str, int]
    quota: dict[str, Any] | None
    item_cost_bytes: float
    format: int = FORMAT_VERSION

    @property
    def shards(self) -> int:
        return len(self.shard_items)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["shards"] = self.shards
        return d

    def encode(self) -> builtins.bytes:
        return json.dumps(self.to_json(), indent=1, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: builtins.bytes, where: str) -> RunPlan:
        try:
            d = json.loads(data)
            if d.get("format") != FORMAT_VERSION:
                raise ConfigError(
                    f"{where} has plan format {d.get('format')!r}, this version reads "
                    f"{FORMAT_VERSION}; use the aion-ingest version that made it"
                )
            d.pop("shards", None)
            return cls(**d)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{where} is not a readable plan ({exc}); plan a new run") from None


def encode_shard(items: list[Item]) -> bytes:
    """A shard file's bytes: gzip JSON lines of Item.to_json(), in ordinal order."""
    lines = "".join(json.dumps(i.to_json(), separators=(",", ":")) + "\n" for i in items)
    return gzip.compress(lines.encode(), 1, mtime=0)


def decode_shard(data: bytes) -> Iterator[Item]:
    """The items of a shard file, in ordinal order (ordinal = position)."""
    for line in gzip.decompress(data).splitlines():
        if line:
            yield Item.from_json(json.loads(line))
