"""What the tests that start real `aion-ingest` processes share: their environment."""

from __future__ import annotations

import os
from typing import Any


def ingest_env(sandbox: Any, **settings: str) -> dict[str, str]:
    """This process's environment without any INGEST_/AIONVISION_ setting or Job index,
    pointed at ``sandbox`` (all file types accepted, the tier with room), plus
    ``settings`` (``INGEST_WORKER__CONCURRENCY="2"``, ...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "AIONVISION_"))}
    env.pop("JOB_COMPLETION_INDEX", None)
    env.update(
        AIONVISION_BASE_URL=sandbox.base_url,
        AIONVISION_API_KEY=sandbox.api_key,
        INGEST_API__TIER="ENTERPRISE",
        INGEST_FILTERS__SUPPORTED_ONLY="false",
    )
    env.update(settings)
    return env
