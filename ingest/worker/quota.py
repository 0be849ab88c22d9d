"""The month's upload quota at its edge: upload what it allows, record the rest.

When the API says the quota is used up (``QuotaExhausted``: a 402 naming it, or files of a
stream-batch refused for it), a run planned with ``--ignore-quota`` (or one whose quota
ran out under it: another client on the key) should keep what fits and say what did not:

- a batch refused as a whole is sized down to what ``GET /uploads/quota-check`` says is
  left and sent again; the files beyond it are ``failed`` with code ``quota_exhausted``;
- once nothing is left, the :class:`QuotaGate` closes: every later file of the shard is
  recorded ``quota_exhausted`` without a request, so the shard completes (every item has
  an outcome; ``run --retry-failed`` sends them once the quota is raised or reset).

One gate per worker: the other workers of the run find out by their own first refusal.
"""

from __future__ import annotations

import dataclasses
import logging

from ingest.errors import QuotaExhausted
from ingest.items import FailureCode, Outcome
from ingest.worker.accounting import Transfer
from ingest.worker.uploads_api import UploadsApi

log = logging.getLogger(__name__)

QUOTA_REASON = "the month's upload quota was used up before this file was sent"


def is_quota_reason(reason: str | None) -> bool:
    """A stream-batch rejection that names the quota (the file fitted no more)."""
    text = (reason or "").lower()
    return "quota" in text or "monthly limit" in text or "upload limit" in text


@dataclasses.dataclass
class QuotaGate:
    """Open until the API says the quota is used up; then every file is recorded, not sent."""

    spent: str | None = None  # the API's words when it closed

    @property
    def closed(self) -> bool:
        return self.spent is not None

    def close(self, why: str) -> None:
        if self.spent is None:
            log.warning(
                "upload quota used up (%s): the shard's remaining files are "
                "recorded quota_exhausted without being sent",
                why,
            )
            self.spent = why

    def record(self, t: Transfer, attempts: int = 0) -> None:
        """``t`` failed for want of quota."""
        t.finish(
            Outcome.FAILED,
            reason=f"{QUOTA_REASON} ({self.spent})" if self.spent else QUOTA_REASON,
            attempts=attempts,
            code=FailureCode.QUOTA_EXHAUSTED,
        )

    async def room(self, client: UploadsApi, wanted: int, exc: QuotaExhausted) -> int:
        """How many of ``wanted`` files still fit (``GET /uploads/quota-check``), after
        ``exc`` refused them all; closes the gate when none do."""
        try:
            answer = await client.quota_check(file_count=wanted)
        except QuotaExhausted:
            answer = None
        available = None if answer is None else answer.available
        if available is None or available <= 0:  # None: no answer, or it says unlimited
            self.close(exc.message)
            return 0
        return min(available, wanted)
