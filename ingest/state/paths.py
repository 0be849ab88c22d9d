"""Checks on the relative paths every store accepts, so both stores refuse the same inputs.

A path is ``/``-separated, relative, without empty parts or parts starting with ``.``: a
folder store must never be tricked into writing outside its root (``..``), it keeps its own
temporary and lock files under dot-names, and an S3 store should hold the same keys a
folder would.
"""

from __future__ import annotations

from ingest.errors import ConfigError


def check_path(path: str) -> str:
    """``path`` unchanged when it is a clean relative path; ConfigError otherwise."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(not p or p.startswith(".") for p in parts):
        raise ConfigError(
            f"state store path {path!r} is not a clean relative path; "
            "use parts separated by single '/', none empty or starting with '.'"
        )
    return path


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a clean path optionally ending in ``/``."""
    if prefix:
        check_path(prefix.removesuffix("/"))
    return prefix
