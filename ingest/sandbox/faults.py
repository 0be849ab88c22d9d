"""Fault injection and rate limiting: how the sandbox shows reliability instead of claiming it.

Every random decision comes from one ``random.Random(seed)``, drawn in request-arrival
order, so a test that sends the same requests in the same order sees the same faults.
Setting faults (flags, env, or ``POST /_sandbox/faults``) re-seeds the generator.

Two limiters, both per-key token buckets:

- the *tier* limit (requests/minute; off by default so demos run fast), the one the real
  API applies; burst = a few requests, ``Retry-After`` = whole seconds until the next token;
- the *fault* limit (requests/second), to provoke 429s on purpose, optionally without
  ``Retry-After`` to exercise a client's own backoff.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import time
from typing import Any

_STATUSES = (500, 502, 503)
#: the numeric fault flags: --fault-<name>, env SANDBOX_FAULT_<NAME>
_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("rate_limit", float, "429 above this many requests/second per key"),
    ("rate_limit_fraction", float, "fraction of requests answered 429 at random"),
    ("error_rate", float, "fraction of requests answered 500/502/503"),
    ("latency_ms", float, "added latency per request"),
    ("drop_rate", float, "fraction of uploads whose connection drops mid-body"),
    (
        "drop_response_rate",
        float,
        "fraction of uploads (stream, stream-batch, confirm) stored, then answered by a "
        "dropped connection (a proxy losing the answer)",
    ),
    ("presign_fail_rate", float, "fraction of presigned PUTs answered 500"),
    ("seed", int, "seed of the fault generator"),
)


class FaultsError(ValueError):
    """A fault setting is out of range or unknown (admin endpoint answers 400 with it)."""


@dataclasses.dataclass
class Faults:
    """The fault settings; all off by default."""

    #: requests/second per key before 429 (0: off)
    rate_limit_rps: float = 0.0
    #: fraction of API requests answered 429 at random, whatever the client's pace (0: off)
    rate_limit_fraction: float = 0.0
    #: send Retry-After with the fault 429s
    rate_limit_retry_after: bool = True
    #: fraction of API requests answered 500/502/503
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = _STATUSES
    #: added to every API request, milliseconds
    latency_ms: float = 0.0
    #: fraction of requests with a body whose connection is dropped mid-body
    drop_rate: float = 0.0
    #: fraction of uploads stored by the server whose answer is then lost (connection
    #: closed without a response): the client cannot know its upload succeeded
    drop_response_rate: float = 0.0
    #: fraction of presigned PUTs answered 500
    presign_fail_rate: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["error_statuses"] = list(self.error_statuses)
        return doc

    def updated(self, changes: dict[str, Any]) -> Faults:
        """A copy with ``changes`` applied, validated (unknown names and bad values raise)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise FaultsError(f"unknown fault(s) {sorted(unknown)}: known ones are {sorted(names)}")
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    def validate(self) -> None:
        for name in (
            "rate_limit_fraction",
            "error_rate",
            "drop_rate",
            "drop_response_rate",
            "presign_fail_rate",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise FaultsError(f"{name} must be a fraction between 0 and 1, got {value!r}")
        for name in ("rate_limit_rps", "latency_ms"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise FaultsError(f"{name} must be a number >= 0, got {value!r}")
        statuses = tuple(self.error_statuses)
        if not statuses or any(s not in _STATUSES for s in statuses):
            raise FaultsError(f"error_statuses must be a non-empty subset of {list(_STATUSES)}")
        self.error_statuses = statuses
        if not isinstance(self.seed, int):
            raise FaultsError(f"seed must be an integer, got {self.seed!r}")

    @staticmethod
    def add_arguments(group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--fault-no-retry-after",
            action="store_true",
            default=os.environ.get("SANDBOX_FAULT_NO_RETRY_AFTER", "") not in ("", "0", "false"),
            help="send fault 429s without Retry-After (FAULT_NO_RETRY_AFTER)",
        )
        for name, kind, help_ in _FLAGS:
            env = f"FAULT_{name.upper()}"
            group.add_argument(
                f"--fault-{name.replace('_', '-')}",
                type=kind,
                default=os.environ.get(f"SANDBOX_{env}", "0"),
                help=f"{help_} ({env})",
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Faults:
        faults = cls(
            rate_limit_rps=float(args.fault_rate_limit),
            rate_limit_fraction=float(args.fault_rate_limit_fraction),
            rate_limit_retry_after=not args.fault_no_retry_after,
            error_rate=float(args.fault_error_rate),
            latency_ms=float(args.fault_latency_ms),
            drop_rate=float(args.fault_drop_rate),
            drop_response_rate=float(args.fault_drop_response_rate),
            presign_fail_rate=float(args.fault_presign_fail_rate),
            seed=int(args.fault_seed),
        )
        faults.validate()
        return faults


class TokenBucket:
    """``rate`` tokens per second up to ``capacity``; starts full."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until the next one."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def retry_after_header(wait_s: float) -> str:
    """Whole seconds, rounded up, at least 1 (HTTP's Retry-After has no fractions)."""
    return str(max(1, math.ceil(wait_s)))


class FaultState:
    """The live faults, the seeded generator and the per-key buckets of one server."""

    def __init__(self, faults: Faults, rpm: int | None, burst: int) -> None:
        self.rpm = rpm
        self.burst = burst
        self.clock = time.monotonic
        self.set(faults)

    def set(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self._tier_buckets: dict[str, TokenBucket] = {}
        self._fault_buckets: dict[str, TokenBucket] = {}

    def tier_limited(self, key: str) -> float:
        """Seconds to wait when ``key`` is over its requests/minute, else 0."""
        if self.rpm is None:
            return 0.0
        now = self.clock()
        bucket = self._tier_buckets.get(key)
        if bucket is None:
            bucket = self._tier_buckets[key] = TokenBucket(self.rpm / 60.0, self.burst, now)
        return bucket.take(now)

    def fault_limited(self, key: str) -> float:
        """Seconds to wait when ``key`` is over the fault requests/second, else 0."""
        rps = self.faults.rate_limit_rps
        if rps <= 0:
            return 0.0
        now = self.clock()
        bucket = self._fault_buckets.get(key)
        if bucket is None or bucket.rate != rps:
            bucket = self._fault_buckets[key] = TokenBucket(rps, max(1.0, rps), now)
        return bucket.take(now)

    def draw_rate_limited(self) -> bool:
        """A random 429 for this request. Draws only when the fault is on."""
        fraction = self.faults.rate_limit_fraction
        return fraction > 0 and self.rng.random() < fraction

    def draw_error(self) -> int | None:
        """A 5xx status for this request, or None. Draws only when the fault is on."""
        f = self.faults
        if f.error_rate <= 0:
            return None
        if self.rng.random() < f.error_rate:
            return self.rng.choice(f.error_statuses)
        return None

    def draw_drop(self) -> bool:
        return self.faults.drop_rate > 0 and self.rng.random() < self.faults.drop_rate

    def draw_drop_response(self) -> bool:
        """Lose this upload's answer after it was stored. Draws only when the fault is on."""
        rate = self.faults.drop_response_rate
        return rate > 0 and self.rng.random() < rate

    def draw_presign_fail(self) -> bool:
        f = self.faults
        return f.presign_fail_rate > 0 and self.rng.random() < f.presign_fail_rate
