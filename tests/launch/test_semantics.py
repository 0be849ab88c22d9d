"""The Indexed Job model: policy table, retries, parallelism, verdicts, exit codes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import ExitCode
from ingest.launch.semantics import (
    IndexedJob,
    IndexState,
    JobSpec,
    PolicyAction,
    VerdictKind,
    classify_exit,
    format_indexes,
    parse_indexes,
)


@pytest.mark.parametrize(
    ("code", "disrupted", "action"),
    [
        (0, False, PolicyAction.SUCCEED),
        (0, True, PolicyAction.SUCCEED),
        (1, False, PolicyAction.COUNT),
        (2, False, PolicyAction.FAIL_JOB),
        (3, False, PolicyAction.FAIL_JOB),
        (3, True, PolicyAction.FAIL_JOB),  # fatal wins over an eviction at the same moment
        (143, True, PolicyAction.IGNORE),
        (143, False, PolicyAction.COUNT),  # SIGTERM without a disruption: someone killed it
        (137, False, PolicyAction.COUNT),
        (1, True, PolicyAction.IGNORE),
    ],
)
def test_policy_table(code: int, disrupted: bool, action: PolicyAction) -> None:
    assert classify_exit(code, disrupted) is action


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (VerdictKind.COMPLETE, ExitCode.OK),
        (VerdictKind.FAILED_INDEXES, ExitCode.RUN_FAILED),
        (VerdictKind.MAX_FAILED_INDEXES, ExitCode.RUN_FAILED),
        (VerdictKind.DEADLINE_EXCEEDED, ExitCode.RUN_FAILED),
        (VerdictKind.BACKOFF_LIMIT_EXCEEDED, ExitCode.RUN_FAILED),
        (VerdictKind.FAILED, ExitCode.RUN_FAILED),
        (VerdictKind.FAILED_BY_POLICY, ExitCode.FATAL),
    ],
)
def test_exit_code_of_each_verdict(kind: VerdictKind, code: ExitCode) -> None:
    assert kind.exit_code is code


def _run(job: IndexedJob, index: int, code: int, disrupted: bool = False) -> PolicyAction:
    job.start(index)
    return job.finish(index, code, disrupted=disrupted)


def test_all_succeed_is_complete() -> None:
    job = IndexedJob(JobSpec(completions=3, parallelism=2))
    assert job.startable() == [0, 1]
    job.start(0)
    job.start(1)
    assert job.startable() == []
    job.finish(1, 0)
    assert job.startable() == [2]
    job.finish(0, 0)
    _run(job, 2, 0)
    assert job.verdict is not None
    assert job.verdict.kind is VerdictKind.COMPLETE
    assert job.verdict.exit_code == 0
    assert job.verdict.succeeded == {0, 1, 2}
    assert job.verdict.describe() == "Complete: 3/3 indexes complete"


def test_count_retries_until_backoff_limit_then_index_fails() -> None:
    job = IndexedJob(JobSpec(completions=2, parallelism=1, backoff_limit_per_index=2))
    for attempt in range(3):
        assert job.startable() == [0]  # the retried index is the lowest pending again
        assert _run(job, 0, 1) is PolicyAction.COUNT
        assert job.failures(0) == attempt + 1
    assert job.state(0) is IndexState.FAILED
    assert job.verdict is None
    _run(job, 1, 0)
    verdict = job.verdict
    assert verdict is not None
    assert verdict.kind is VerdictKind.FAILED_INDEXES
    assert verdict.exit_code == 4
    assert verdict.failed == {0}
    assert "failed 0" in verdict.describe()


def test_backoff_limit_zero_means_one_attempt() -> None:
    job = IndexedJob(JobSpec(completions=1, backoff_limit_per_index=0))
    _run(job, 0, 1)
    assert job.state(0) is IndexState.FAILED


def test_disruption_is_retried_without_counting() -> None:
    job = IndexedJob(JobSpec(completions=1, backoff_limit_per_index=0))
    for _ in range(5):
        assert _run(job, 0, 143, disrupted=True) is PolicyAction.IGNORE
    assert job.failures(0) == 0
    assert job.ignored(0) == 5
    _run(job, 0, 0)
    assert job.verdict is not None
    assert job.verdict.kind is VerdictKind.COMPLETE


def test_fail_job_ends_at_once_and_running_indexes_stay_unfinished() -> None:
    job = IndexedJob(JobSpec(completions=4, parallelism=3))
    for i in job.startable():
        job.start(i)
    assert job.finish(1, 3) is PolicyAction.FAIL_JOB
    verdict = job.verdict
    assert verdict is not None
    assert verdict.kind is VerdictKind.FAILED_BY_POLICY
    assert verdict.exit_code == 3
    assert verdict.unfinished == {0, 2, 3}
    assert job.startable() == []
    # The terminated pods report back: a late success is kept, the verdict stands.
    job.finish(0, 0)
    job.finish(2, 143, disrupted=True)
    assert job.state(0) is IndexState.SUCCEEDED
    assert job.state(2) is IndexState.PENDING
    assert job.verdict is verdict
    with pytest.raises(RuntimeError, match="has ended"):
        job.start(3)


def test_max_failed_indexes_stops_early() -> None:
    job = IndexedJob(
        JobSpec(completions=5, parallelism=1, backoff_limit_per_index=0, max_failed_indexes=1)
    )
    _run(job, 0, 1)
    assert job.verdict is None
    _run(job, 1, 0)
    _run(job, 2, 1)
    verdict = job.verdict
    assert verdict is not None
    assert verdict.kind is VerdictKind.MAX_FAILED_INDEXES
    assert verdict.failed == {0, 2}
    assert verdict.unfinished == {3, 4}
    assert "unfinished 3-4" in verdict.describe()


def test_expire_is_deadline_exceeded() -> None:
    job = IndexedJob(JobSpec(completions=2))
    job.start(0)
    job.expire()
    assert job.verdict is not None
    assert job.verdict.kind is VerdictKind.DEADLINE_EXCEEDED
    job.expire()  # idempotent
    assert job.verdict.kind is VerdictKind.DEADLINE_EXCEEDED


def test_misuse_is_refused() -> None:
    job = IndexedJob(JobSpec(completions=2, parallelism=1))
    with pytest.raises(RuntimeError, match="not running"):
        job.finish(0, 0)
    job.start(0)
    with pytest.raises(RuntimeError, match="not pending"):
        job.start(0)
    with pytest.raises(RuntimeError, match="parallelism"):
        job.start(1)
    with pytest.raises(ValueError, match="completions"):
        JobSpec(completions=0)
    with pytest.raises(ValueError, match="parallelism"):
        JobSpec(completions=1, parallelism=0)


@pytest.mark.parametrize(
    ("indexes", "text"),
    [(set(), ""), ({0}, "0"), ({1, 3, 4, 5}, "1,3-5"), ({0, 1, 2, 7, 9, 10}, "0-2,7,9-10")],
)
def test_index_intervals(indexes: set[int], text: str) -> None:
    assert format_indexes(indexes) == text
    assert parse_indexes(text) == indexes


def test_bad_interval_is_named() -> None:
    with pytest.raises(ValueError, match="'5-3'"):
        parse_indexes("1,5-3")


@given(st.sets(st.integers(0, 500)))
def test_index_intervals_round_trip(indexes: set[int]) -> None:
    assert parse_indexes(format_indexes(indexes)) == indexes


_CODES = st.sampled_from([0, 0, 0, 1, 1, 2, 3, 137, 143])


@settings(max_examples=300, deadline=None)
@given(
    completions=st.integers(1, 8),
    parallelism=st.integers(1, 4),
    limit=st.integers(0, 3),
    max_failed=st.none() | st.integers(0, 3),
    data=st.data(),
)
def test_any_history_keeps_the_invariants(
    completions: int, parallelism: int, limit: int, max_failed: int | None, data: st.DataObject
) -> None:
    spec = JobSpec(completions, parallelism, limit, max_failed)
    job = IndexedJob(spec)
    steps = 0
    while job.verdict is None:
        steps += 1
        assert steps < 1000, "the Job never ends"
        for i in job.startable():
            job.start(i)
        running = sorted(job.running)
        assert 0 < len(running) <= parallelism
        # the running set is always the lowest indexes not yet done or retried
        index = data.draw(st.sampled_from(running))
        code = data.draw(_CODES)
        disrupted = code == 143 and data.draw(st.booleans())
        job.finish(index, code, disrupted=disrupted)
        for i in range(completions):
            assert job.failures(i) <= limit + 1
            assert (job.state(i) is IndexState.FAILED) == (
                job.failures(i) > limit
                or (
                    job.verdict is not None
                    and job.verdict.kind is VerdictKind.FAILED_BY_POLICY
                    and i == index
                    and code in (2, 3)
                )
            )
    verdict = job.verdict
    assert verdict.succeeded.isdisjoint(verdict.failed)
    if verdict.kind is VerdictKind.COMPLETE:
        assert verdict.succeeded == set(range(completions))
    if verdict.kind is VerdictKind.FAILED_INDEXES:
        assert verdict.failed
        assert not verdict.unfinished
        assert max_failed is None or len(verdict.failed) <= max_failed
    if verdict.kind is VerdictKind.MAX_FAILED_INDEXES:
        assert max_failed is not None
        assert len(verdict.failed) == max_failed + 1
    assert verdict.kind is not VerdictKind.DEADLINE_EXCEEDED
