"""Options of ``aion-ingest sandbox``: flags, each with a ``SANDBOX_*`` environment fallback.

The sandbox has its own settings (not ``ingest.settings``): it is a separate program that
happens to ship in the same package, and users run it in staging clusters with env vars.
Flag parsing goes through argparse ``type=`` functions, which argparse also applies to
string defaults, so a bad environment value fails the same clear way as a bad flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
from pathlib import Path
from typing import Literal

from ingest.errors import ConfigError
from ingest.sandbox.faults import Faults

Tier = Literal["FREE", "STARTER", "PROFESSIONAL", "ENTERPRISE"]

#: The documented tier presets: files per stream-batch, requests per minute per key,
#: monthly uploads (None: unlimited).
TIER_BATCH_FILES: dict[str, int] = {"FREE": 10, "STARTER": 20, "PROFESSIONAL": 20, "ENTERPRISE": 50}
TIER_RPM: dict[str, int] = {"FREE": 10, "STARTER": 30, "PROFESSIONAL": 100, "ENTERPRISE": 500}
TIER_MONTHLY: dict[str, int | None] = {
    "FREE": 1_000,
    "STARTER": 10_000,
    "PROFESSIONAL": 50_000,
    "ENTERPRISE": None,
}
DEFAULT_API_KEY = "aion_sandbox_key"


def new_admin_key() -> str:
    """A fresh key for the ``/_sandbox/*`` admin endpoints (printed at start)."""
    return "aion_admin_" + secrets.token_urlsafe(24)


MAX_STREAM_BYTES = 100 * 1024 * 1024  # "max 100MB"; the docs' max_size_bytes is 104857600


@dataclasses.dataclass
class SandboxOptions:
    """Everything a sandbox server is started with (the test fixture builds these directly)."""

    host: str = "127.0.0.1"
    port: int = 8080
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    #: Bearer key of the admin endpoints (faults, reset, stats, files); never an API key.
    admin_key: str = dataclasses.field(default_factory=new_admin_key)
    store: Literal["none", "disk"] = "none"
    data_dir: Path | None = None
    tier: Tier = "ENTERPRISE"
    #: Monthly uploads allowed; None: the tier's preset; -1: unlimited.
    quota: int | None = None
    #: Per-key requests/minute limit on (the tier's figure unless ``rpm`` is set).
    rate_limit: bool = False
    rpm: int | None = None
    #: Token bucket capacity of the per-key limiter: a few requests may come back to back.
    burst: int = 3
    presign_ttl_s: float = 600.0
    presign_max_bytes: int = 5 * 1024**3
    max_stream_bytes: int = MAX_STREAM_BYTES
    access_log: bool = False
    faults: Faults = dataclasses.field(default_factory=Faults)

    @property
    def batch_limit(self) -> int:
        return TIER_BATCH_FILES[self.tier]

    @property
    def monthly_limit(self) -> int | None:
        """Uploads allowed per month, None when unlimited."""
        if self.quota is None:
            return TIER_MONTHLY[self.tier]
        return None if self.quota < 0 else self.quota

    @property
    def effective_rpm(self) -> int | None:
        """Requests per minute per key, None when the limit is off."""
        if self.rpm is not None:
            return self.rpm
        return TIER_RPM[self.tier] if self.rate_limit else None


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SANDBOX_{name}", default)


def _tier(value: str) -> str:
    upper = value.strip().upper()
    if upper not in TIER_BATCH_FILES:
        raise argparse.ArgumentTypeError(
            f"unknown tier {value!r}: use one of {', '.join(TIER_BATCH_FILES)}"
        )
    return upper


def _quota(value: str) -> int:
    if value.strip().lower() in ("unlimited", "-1"):
        return -1
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"quota {value!r} is not a number: give uploads per month or 'unlimited'"
        ) from None
    if n < 0:
        raise argparse.ArgumentTypeError("quota must be >= 0 (or 'unlimited')")
    return n


def _bool(value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a boolean: use true or false")


def _keys(value: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    if not keys:
        raise argparse.ArgumentTypeError("no API key given: pass one or more, comma-separated")
    return keys


def _store(value: str) -> str:
    if value not in ("none", "disk"):
        raise argparse.ArgumentTypeError(f"store {value!r}: use 'none' or 'disk'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sandbox`` subcommand's flags (each falls back to ``SANDBOX_<NAME>``)."""
    g = parser.add_argument_group("server")
    g.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="address to bind (HOST)")
    g.add_argument(
        "--port", type=int, default=_env("PORT", "8080"), help="port to bind; 0 picks one (PORT)"
    )
    g.add_argument(
        "--api-keys",
        type=_keys,
        default=_env("API_KEYS", DEFAULT_API_KEY),
        help=f"accepted Bearer keys, comma-separated (API_KEYS) [default: {DEFAULT_API_KEY}]",
    )
    g.add_argument(
        "--admin-key",
        default=_env("ADMIN_KEY"),
        help="Bearer key for the /_sandbox/* admin endpoints (faults, reset, stats, files) "
        "(ADMIN_KEY) [default: a new random key, printed at start]",
    )
    g.add_argument(
        "--store",
        type=_store,
        default=_env("STORE", "none"),
        help="none: keep metadata only; disk: also keep bytes under --data-dir (STORE)",
    )
    g.add_argument("--data-dir", type=Path, default=_env("DATA_DIR"), help="(DATA_DIR)")
    g.add_argument(
        "--access-log",
        type=_bool,
        default=_env("ACCESS_LOG", "false"),
        help="log every request (ACCESS_LOG)",
    )
    g = parser.add_argument_group("limits")
    g.add_argument(
        "--tier",
        type=_tier,
        default=_env("TIER", "ENTERPRISE"),
        help="FREE|STARTER|PROFESSIONAL|ENTERPRISE: files per batch, monthly quota (TIER)",
    )
    g.add_argument(
        "--preset",
        type=_tier,
        default=_env("PRESET"),
        help="a tier with its per-key requests/minute limit switched on (PRESET)",
    )
    g.add_argument(
        "--quota",
        type=_quota,
        default=_env("QUOTA"),
        help="monthly uploads allowed, or 'unlimited' [default: the tier's] (QUOTA)",
    )
    g.add_argument(
        "--rate-limit",
        type=_bool,
        nargs="?",
        const=True,
        default=_env("RATE_LIMIT", "false"),
        help="switch on the tier's per-key requests/minute limit (RATE_LIMIT)",
    )
    g.add_argument("--rpm", type=int, default=_env("RPM"), help="per-key requests/minute (RPM)")
    g.add_argument("--burst", type=int, default=_env("BURST", "3"), help="rate burst (BURST)")
    g.add_argument(
        "--presign-ttl",
        type=float,
        default=_env("PRESIGN_TTL", "600"),
        help="presigned URL lifetime, seconds (PRESIGN_TTL)",
    )
    Faults.add_arguments(parser.add_argument_group("faults (also POST /_sandbox/faults)"))


def options_from_args(args: argparse.Namespace) -> SandboxOptions:
    tier: str = args.preset or args.tier
    admin_key = (args.admin_key or "").strip() or new_admin_key()
    if admin_key in args.api_keys:
        raise ConfigError(
            "sandbox: --admin-key is one of the --api-keys: give the admin endpoints a key of "
            "their own"
        )
    return SandboxOptions(
        host=args.host,
        port=int(args.port),
        api_keys=tuple(args.api_keys),
        admin_key=admin_key,
        store=args.store,
        data_dir=args.data_dir,
        tier=tier,  # type: ignore[arg-type]
        quota=args.quota,
        rate_limit=bool(args.rate_limit) or args.preset is not None,
        rpm=args.rpm,
        burst=max(1, int(args.burst)),
        presign_ttl_s=float(args.presign_ttl),
        access_log=bool(args.access_log),
        faults=Faults.from_args(args),
    )
