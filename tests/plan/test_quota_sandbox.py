"""quota-check against the sandbox: a refusal stops the plan with the API's own message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ingest.api.client import AionClient
from ingest.errors import ExitCode, FatalError
from ingest.planning.planner import make_plan
from ingest.settings import load_settings
from ingest.state import open_state
from tests.plan.helpers import items_of, listing


async def test_a_quota_refusal_from_the_api_stops_the_plan(
    sandbox_factory: Callable[..., Any], tmp_path: Path
) -> None:
    api = sandbox_factory(tier="FREE", quota=5)
    settings = load_settings(api={"key": api.api_key, "base_url": api.base_url})
    async with AionClient(settings.api) as client, open_state(str(tmp_path), settings) as store:
        with pytest.raises(FatalError, match="quota-check refused 20 files") as err:
            await make_plan(
                listing(items_of([100] * 20)),
                settings=settings,
                source_uri="x",
                store=store,
                quota_check=client.quota_check,
            )
        assert err.value.exit_code == ExitCode.FATAL
        assert [p async for p in store.list("runs/")] == []
        # Within the quota, the same API lets the plan through and the answer is kept.
        out = await make_plan(
            listing(items_of([100] * 5)),
            settings=settings,
            source_uri="x",
            store=store,
            quota_check=client.quota_check,
        )
    assert out.plan.quota is not None
    assert out.plan.quota["can_proceed"] is True
    assert out.plan.quota["requested"] == 5
