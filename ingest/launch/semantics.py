"""Indexed Job semantics: one pure, clock-free model shared by Kubernetes and the local launcher.

Kubernetes runs the workers as an Indexed Job; ``aion-ingest run`` runs them as local
processes. Both must agree on what a worker's exit code means and on when a run is over,
or a run would succeed on a laptop and fail in a cluster. So the rules live here once:

- per index: pending → running → succeeded | failed, with a failure count checked
  against ``backoff_limit_per_index`` (retries allowed *after* the first attempt, as in
  Kubernetes: limit 0 means one attempt);
- ``parallelism``: at most that many indexes run; the lowest pending index starts next;
- the pod failure policy (DESIGN.md's exit-code table), first matching rule wins, as in
  Kubernetes: 2 and 3 fail the whole Job, a disrupted pod (``DisruptionTarget``, e.g. an
  eviction that sent SIGTERM → 143) is ignored (retried, not counted), anything else counts;
- ``max_failed_indexes``: past it the Job stops early;
- the verdict, named by the Kubernetes condition reason, and the exit code derived from it.

No clock and no I/O: the deadline is an event the caller reports (:meth:`IndexedJob.expire`).
The same reasons appear in the Kubernetes Job status, so :mod:`ingest.launch.kubernetes`
maps a live Job onto :class:`Verdict` without a second table.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable

from ingest.errors import ExitCode


class IndexState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PolicyAction(enum.StrEnum):
    """What a finished worker means for its index. Values are Kubernetes' action names."""

    SUCCEED = "Succeed"  # exit 0: not a policy rule in Kubernetes, the index completes
    COUNT = "Count"  # counts towards backoffLimitPerIndex, then the index is retried
    FAIL_JOB = "FailJob"  # the whole Job fails at once
    IGNORE = "Ignore"  # retried without counting (a disruption is nobody's fault)


@dataclasses.dataclass(frozen=True)
class PodFailureRule:
    """One podFailurePolicy rule: match on exit codes, or on the pod's DisruptionTarget."""

    action: PolicyAction
    exit_codes: frozenset[int] | None = None
    on_disruption: bool = False

    def matches(self, exit_code: int, disrupted: bool) -> bool:
        if self.exit_codes is not None:
            return exit_code in self.exit_codes
        return self.on_disruption and disrupted


# DESIGN.md's table. Order matters (first match wins): a fatal exit (bad key, bad config)
# fails the Job even when the pod was being evicted at the same moment.
POD_FAILURE_POLICY: tuple[PodFailureRule, ...] = (
    PodFailureRule(
        PolicyAction.FAIL_JOB, exit_codes=frozenset({int(ExitCode.USAGE), int(ExitCode.FATAL)})
    ),
    PodFailureRule(PolicyAction.IGNORE, on_disruption=True),
)


def classify_exit(
    exit_code: int,
    disrupted: bool = False,
    rules: Iterable[PodFailureRule] = POD_FAILURE_POLICY,
) -> PolicyAction:
    """The action for a worker that exited with ``exit_code`` (``disrupted``: DisruptionTarget)."""
    if exit_code == 0:
        return PolicyAction.SUCCEED
    for rule in rules:
        if rule.matches(exit_code, disrupted):
            return rule.action
    return PolicyAction.COUNT


class VerdictKind(enum.StrEnum):
    """How a Job ended. Values are the reasons Kubernetes puts on the Job's condition."""

    COMPLETE = "Complete"  # every index succeeded
    FAILED_INDEXES = "FailedIndexes"  # every index ran; some failed (within maxFailedIndexes)
    MAX_FAILED_INDEXES = "MaxFailedIndexesExceeded"  # stopped early: too many failed indexes
    FAILED_BY_POLICY = "PodFailurePolicy"  # a FailJob rule matched (exit 2 or 3)
    DEADLINE_EXCEEDED = "DeadlineExceeded"  # activeDeadlineSeconds ran out
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"  # the Job-wide backoffLimit (not set by us)
    FAILED = "Failed"  # any other reason Kubernetes may give a failed Job

    @property
    def exit_code(self) -> ExitCode:
        """The coordinator's and ``aion-ingest run``'s exit code for this ending.

        0 when every shard is complete; 3 when a FailJob rule fired (a worker found the run
        itself hopeless: bad key, quota, bad configuration); 4 otherwise: the run ended
        and some indexes did not finish. That verdict is final (the coordinator's Job must
        not retry it: a retry would find the same ended Job); the report names the
        indexes, and ``aion-ingest resume`` (or a new run) continues from the checkpoints.
        """
        if self is VerdictKind.COMPLETE:
            return ExitCode.OK
        if self is VerdictKind.FAILED_BY_POLICY:
            return ExitCode.FATAL
        return ExitCode.RUN_FAILED


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The end of a Job: how it ended and which indexes got where."""

    kind: VerdictKind
    completions: int
    succeeded: frozenset[int]
    failed: frozenset[int]
    message: str = ""
    worker_exit_code: int | None = None  # the exit that fired a FailJob rule, when known

    @property
    def exit_code(self) -> ExitCode:
        """The kind's exit code; a worker's usage error (exit 2: a bad base URL, a missing
        key) stays 2, so the user sees a configuration error, not a fatal run."""
        if self.kind is VerdictKind.FAILED_BY_POLICY and self.worker_exit_code == ExitCode.USAGE:
            return ExitCode.USAGE
        return self.kind.exit_code

    @property
    def unfinished(self) -> frozenset[int]:
        """Indexes that neither succeeded nor failed (the Job stopped before them)."""
        return frozenset(range(self.completions)) - self.succeeded - self.failed

    def describe(self) -> str:
        """One line for logs and the report."""
        parts = [f"{self.kind.value}: {len(self.succeeded)}/{self.completions} indexes complete"]
        if self.failed:
            parts.append(f"failed {format_indexes(self.failed)}")
        if self.unfinished:
            parts.append(f"unfinished {format_indexes(self.unfinished)}")
        if self.message:
            parts.append(self.message)
        return "; ".join(parts)


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """The knobs of an Indexed Job that decide its semantics."""

    completions: int
    parallelism: int = 1
    backoff_limit_per_index: int = 3
    max_failed_indexes: int | None = None  # None: no limit, every index runs
    rules: tuple[PodFailureRule, ...] = POD_FAILURE_POLICY

    def __post_init__(self) -> None:
        if self.completions < 1:
            raise ValueError(f"completions must be at least 1, got {self.completions}")
        if self.parallelism < 1:
            raise ValueError(f"parallelism must be at least 1, got {self.parallelism}")
        if self.backoff_limit_per_index < 0:
            raise ValueError("backoff_limit_per_index must be 0 or more")
        if self.max_failed_indexes is not None and self.max_failed_indexes < 0:
            raise ValueError("max_failed_indexes must be 0 or more")


class IndexedJob:
    """The state of one Indexed Job, driven by events: start, finish (exit code), expire.

    The local launcher asks :meth:`startable` what to launch, calls :meth:`start` when
    it does, :meth:`finish` when a process exits, and stops once :attr:`verdict` is set
    (terminating what still runs, as Kubernetes does). Events after the verdict are
    recorded for the report but never change the verdict.
    """

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self._state = [IndexState.PENDING] * spec.completions
        self._failures = [0] * spec.completions
        self._ignored = [0] * spec.completions
        self._verdict: Verdict | None = None

    # -- queries ---------------------------------------------------------------------

    def state(self, index: int) -> IndexState:
        return self._state[index]

    def failures(self, index: int) -> int:
        """Counted failures of ``index`` (ignored disruptions excluded)."""
        return self._failures[index]

    def ignored(self, index: int) -> int:
        """Failures of ``index`` the policy ignored (disruptions)."""
        return self._ignored[index]

    def indexes(self, state: IndexState) -> frozenset[int]:
        return frozenset(i for i, s in enumerate(self._state) if s is state)

    @property
    def running(self) -> frozenset[int]:
        return self.indexes(IndexState.RUNNING)

    @property
    def verdict(self) -> Verdict | None:
        """How the Job ended, or None while it runs."""
        return self._verdict

    def startable(self) -> list[int]:
        """Indexes to start now: lowest pending first, up to the free parallelism slots."""
        if self._verdict is not None:
            return []
        free = self.spec.parallelism - len(self.running)
        pending = (i for i, s in enumerate(self._state) if s is IndexState.PENDING)
        return [i for _, i in zip(range(max(free, 0)), pending, strict=False)]

    # -- events ----------------------------------------------------------------------

    def start(self, index: int) -> None:
        if self._verdict is not None:
            raise RuntimeError(f"index {index}: the Job has ended ({self._verdict.kind})")
        if self._state[index] is not IndexState.PENDING:
            raise RuntimeError(f"index {index} is {self._state[index]}, not pending")
        if len(self.running) >= self.spec.parallelism:
            raise RuntimeError(f"index {index}: parallelism {self.spec.parallelism} reached")
        self._state[index] = IndexState.RUNNING

    def finish(self, index: int, exit_code: int, *, disrupted: bool = False) -> PolicyAction:
        """A worker of ``index`` exited; apply the policy and return what it decided."""
        if self._state[index] is not IndexState.RUNNING:
            raise RuntimeError(f"index {index} is {self._state[index]}, not running")
        action = classify_exit(exit_code, disrupted, self.spec.rules)
        if self._verdict is not None:
            # The Job is over and its pods are being terminated: keep a success for the
            # report, leave anything else unfinished. The verdict stands.
            ok = action is PolicyAction.SUCCEED
            self._state[index] = IndexState.SUCCEEDED if ok else IndexState.PENDING
            return action
        if action is PolicyAction.SUCCEED:
            self._state[index] = IndexState.SUCCEEDED
        elif action is PolicyAction.IGNORE:
            self._ignored[index] += 1
            self._state[index] = IndexState.PENDING
        elif action is PolicyAction.FAIL_JOB:
            self._failures[index] += 1
            self._state[index] = IndexState.FAILED
            self._end(
                VerdictKind.FAILED_BY_POLICY,
                f"index {index} exited with {exit_code}, which fails the Job",
                worker_exit_code=exit_code,
            )
            return action
        else:
            self._failures[index] += 1
            over = self._failures[index] > self.spec.backoff_limit_per_index
            self._state[index] = IndexState.FAILED if over else IndexState.PENDING
        self._settle()
        return action

    def expire(self) -> None:
        """activeDeadlineSeconds ran out (the caller owns the clock)."""
        if self._verdict is None:
            self._end(VerdictKind.DEADLINE_EXCEEDED, "the Job ran past its deadline")

    # -- internals -------------------------------------------------------------------

    def _settle(self) -> None:
        failed = self.indexes(IndexState.FAILED)
        limit = self.spec.max_failed_indexes
        if limit is not None and len(failed) > limit:
            self._end(
                VerdictKind.MAX_FAILED_INDEXES,
                f"{len(failed)} failed indexes exceed maxFailedIndexes {limit}",
            )
        elif all(s in (IndexState.SUCCEEDED, IndexState.FAILED) for s in self._state):
            self._end(VerdictKind.FAILED_INDEXES if failed else VerdictKind.COMPLETE, "")

    def _end(self, kind: VerdictKind, message: str, worker_exit_code: int | None = None) -> None:
        verdict = self.snapshot(kind, message)
        self._verdict = dataclasses.replace(verdict, worker_exit_code=worker_exit_code)

    def snapshot(self, kind: VerdictKind, message: str = "") -> Verdict:
        """A :class:`Verdict` of ``kind`` with the indexes as they stand now."""
        return Verdict(
            kind=kind,
            completions=self.spec.completions,
            succeeded=self.indexes(IndexState.SUCCEEDED),
            failed=self.indexes(IndexState.FAILED),
            message=message,
        )


def format_indexes(indexes: Iterable[int]) -> str:
    """Kubernetes' interval form: ``{1, 3, 4, 5}`` → ``"1,3-5"`` (``""`` when empty)."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(set(indexes)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(_interval(run))
        run = [i]
    if run:
        out.append(_interval(run))
    return ",".join(out)


def _interval(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def parse_indexes(text: str | None) -> frozenset[int]:
    """The inverse of :func:`format_indexes`, as found in a Job's ``completedIndexes``."""
    result: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                result.update(range(lo, hi + 1))
            else:
                result.add(int(part))
        except ValueError:
            raise ValueError(f"bad index interval {part!r} in {text!r}") from None
    return frozenset(result)
