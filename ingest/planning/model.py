"""The quota answer a plan keeps (the plan record itself, ``run.json``, is
:class:`ingest.state.records.RunPlan`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol


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
