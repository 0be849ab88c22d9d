"""Run ids: sortable, unique, and safe inside Kubernetes names and labels.

A new id is the UTC time to the second plus 4 random hex digits
(``20261128t224719z-3f9a``): ids sort by creation time and two planners starting in the
same second still differ. Lower case because the id ends up in Job names (DNS-1123).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from ingest.errors import ConfigError

MAX_LENGTH = 40
_VALID = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def new_run_id(now: dt.datetime | None = None) -> str:
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{when:%Y%m%dt%H%M%Sz}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    """``run_id`` when usable in Kubernetes names and labels; ConfigError otherwise."""
    if len(run_id) > MAX_LENGTH or not _VALID.match(run_id):
        raise ConfigError(
            f"run id {run_id!r} is not usable: use 1-{MAX_LENGTH} characters from a-z, 0-9 "
            "and '-', starting and ending with a letter or digit (it names Kubernetes objects)"
        )
    return run_id
