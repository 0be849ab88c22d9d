"""A newcomer's mistakes (issue 14): each gets the right exit code and a message naming the
thing and the fix. Real `aion-ingest` subprocesses against the sandbox on a free port."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.run.helpers import make_source, run_env, start


def _finish(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    proc = start(args, env)
    out, err = proc.communicate(timeout=timeout)
    assert "Traceback" not in err, err[-3000:]
    return proc.returncode, out, err


def test_a_wrong_base_url_path_is_a_usage_error_for_run_plan_and_resume(
    tmp_path: Path, sandbox: Any
) -> None:
    src = tmp_path / "src"
    make_source(src, 6)
    state = f"file://{tmp_path / 'state'}"
    wrong = sandbox.base_url.replace("/api/v2", "/api/v3")
    bad = run_env(tmp_path, sandbox, AIONVISION_BASE_URL=wrong)

    for args in (["run", str(src), "--state", state], ["plan", str(src), "--dry-run"]):
        code, _, err = _finish(args, bad)
        assert code == 2, err[-3000:]
        assert f"no API endpoint at {wrong}/uploads/quota-check" in err
        assert "AIONVISION_BASE_URL" in err

    # A plan made with the right URL, resumed with the wrong one: a usage error, not
    # "Complete" with every item failed.
    good = run_env(tmp_path, sandbox)
    code, _, err = _finish(["plan", str(src), "--state", state, "--run-id", "r404"], good)
    assert code == 0, err
    code, out, err = _finish(["resume", "r404", "--state", state], bad)
    assert code == 2, err[-3000:]
    assert f"index 0 failed: shard stopped: no API endpoint at {wrong}/" in out, out  # the cause
    assert "AIONVISION_BASE_URL" in out
    assert sandbox.files() == []


def _plan_json(state: Path, run_id: str) -> dict[str, Any]:
    return dict(json.loads((state / "runs" / run_id / "run.json").read_text()))


def test_run_p_plans_a_shard_per_worker_and_says_so(tmp_path: Path, sandbox: Any) -> None:
    src = tmp_path / "src"
    make_source(src, 6)
    state = tmp_path / "state"
    env = run_env(tmp_path, sandbox)
    del env["INGEST_LOG__FORMAT"]  # the default: one format, off a terminal too
    args = ["run", str(src), "--state", f"file://{state}", "-p", "3", "--run-id", "rp3"]
    code, out, err = _finish(args, env)
    assert code == 0, err[-3000:]
    assert len(_plan_json(state, "rp3")["shard_items"]) == 3
    assert "3 shards: one per worker process (-p 3)" in err
    # The result on stdout, progress and logs (one format: text) on stderr.
    assert out.startswith("run rp3: 6 planned objects: 6 uploaded"), out
    assert f"report: file://{state}/runs/rp3/report.csv" in out
    assert not [line for line in err.splitlines() if line.startswith("{")]
    first = json.loads((state / "runs" / "rp3" / "report.json").read_text())
    code, out, err = _finish(["resume", "rp3", "--state", f"file://{state}", "--json"], env)
    assert code == 0, err[-3000:]
    doc = json.loads(out)
    assert (doc["run_id"], doc["exit_code"]) == ("rp3", 0)
    assert doc["report"]["by_outcome"]["uploaded"] == 6
    # The rebuilt report (resume, seconds later) keeps the run's own finish and duration.
    again = doc["report"]
    assert (again["finished_at"], again["duration_seconds"]) == (
        first["finished_at"],
        first["duration_seconds"],
    )
    # --shards still wins.
    args = ["plan", str(src), "--state", f"file://{state}", "--shards", "1", "--run-id", "rs1"]
    code, _, err = _finish(args, env)
    assert code == 0, err
    assert len(_plan_json(state, "rs1")["shard_items"]) == 1

    # `runs` lists both, newest first, with their status.
    code, out, err = _finish(["runs", "--state", f"file://{state}"], env)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["rs1", "rp3"]
    assert "not reported: 0/6 done" in lines[0]
    assert "Complete (0 failed)" in lines[1]


def test_p_0_and_a_reused_run_id_with_another_source_are_refused(
    tmp_path: Path, sandbox: Any
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_source(a, 2)
    make_source(b, 2, seed=2)
    state = f"file://{tmp_path / 'state'}"
    env = run_env(tmp_path, sandbox)
    code, _, err = _finish(["run", str(a), "--state", state, "-p", "0"], env)
    assert code == 2
    assert "-p/--parallelism: must be at least 1, got 0" in err

    code, _, err = _finish(["plan", str(a), "--state", state, "--run-id", "same"], env)
    assert code == 0, err
    code, _, err = _finish(["run", str(b), "--state", state, "--run-id", "same"], env)
    assert code == 2, err[-3000:]
    assert f"run same was planned from {a}; you gave {b}" in err
    assert "aion-ingest resume same" in err
    assert sandbox.files() == []


def test_a_relative_source_is_stored_absolute_and_resumes_from_elsewhere(
    tmp_path: Path, sandbox: Any
) -> None:
    (tmp_path / "work").mkdir()
    make_source(tmp_path / "work" / "photos", 4)
    state = tmp_path / "state"
    env = run_env(tmp_path, sandbox)
    args = ["plan", "photos", "--state", f"file://{state}", "--run-id", "rel"]
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        env=env,
        cwd=tmp_path / "work",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert _plan_json(state, "rel")["source"] == str(tmp_path / "work" / "photos")
    code, _, err = _finish(["resume", "rel", "--state", f"file://{state}"], env)  # cwd elsewhere
    assert code == 0, err[-3000:]
    assert len(sandbox.files()) == 4
    uri = (tmp_path / "work" / "photos").as_uri()
    code, _, err = _finish(["plan", uri, "--state", f"file://{state}", "--run-id", "uri"], env)
    assert code == 0, err
    assert _plan_json(state, "uri")["source"] == uri


def test_a_base_url_without_scheme_or_listener_fails_at_once_naming_it(
    tmp_path: Path, sandbox: Any, port: int
) -> None:
    src = tmp_path / "src"
    make_source(src, 2)
    no_scheme = sandbox.base_url.split("://", 1)[1]
    env = run_env(tmp_path, sandbox, AIONVISION_BASE_URL=no_scheme)
    code, _, err = _finish(["plan", str(src), "--dry-run"], env)
    assert code == 2
    assert "INGEST_API__BASE_URL" in err and "AIONVISION_BASE_URL" in err
    assert "must start with http:// or https://" in err

    nobody = f"http://127.0.0.1:{port}/api/v2"  # free port: nothing listens there
    env = run_env(tmp_path, sandbox, AIONVISION_BASE_URL=nobody, INGEST_API__MAX_ATTEMPTS="6")
    code, _, err = _finish(["plan", str(src), "--dry-run"], env)
    assert code == 2, err
    assert f"nothing listens at {nobody} (connection refused)" in err
    assert "giving up" not in err and "retrying" not in err  # failed fast: no retries


def test_list_settings_take_commas_and_a_bad_value_names_its_variable(
    tmp_path: Path, sandbox: Any
) -> None:
    src = tmp_path / "src"
    make_source(src, 6)
    env = run_env(tmp_path, sandbox, INGEST_FILTERS__INCLUDE="*-0001.jpg, *.png")
    code, out, err = _finish(["plan", str(src), "--dry-run", "--json"], env)
    assert code == 0, err
    plan = json.loads(out)
    assert plan["items"] == 4  # one jpg, three pngs

    env = run_env(tmp_path, sandbox, INGEST_KUBERNETES__TOLERATIONS="not json")
    code, _, err = _finish(["plan", str(src), "--dry-run"], env)
    assert code == 2
    assert "invalid setting INGEST_KUBERNETES__TOLERATIONS: " in err
    assert "fix or unset it" in err


def test_run_says_its_pacing_and_takes_the_tier_from_quota_check(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    api = sandbox_factory(tier="STARTER")  # quota-check: monthly limit 10,000
    src = tmp_path / "src"
    make_source(src, 4)
    state = f"file://{tmp_path / 'state'}"
    env = run_env(tmp_path, api)
    del env["INGEST_API__TIER"], env["INGEST_WORKER__REQUESTS_PER_MINUTE"]
    code, _, err = _finish(["run", str(src), "--state", state, "-p", "1"], env)
    assert code == 0, err[-3000:]
    assert (
        "pacing: 30 requests/min for the whole run, 20 files per batch "
        "(tier STARTER, from quota-check: monthly limit 10,000)"
    ) in err
    assert "INGEST_API__TIER" in err and "INGEST_WORKER__REQUESTS_PER_MINUTE" in err

    env["INGEST_API__TIER"] = "FREE"  # the user's own setting wins
    code, _, err = _finish(["run", str(src), "--state", state, "-p", "1"], env)
    assert code == 0, err[-3000:]
    assert "10 requests/min for the whole run, 10 files per batch (tier FREE, set by" in err


def test_a_failed_index_shows_its_cause_and_failures_group_by_code(
    tmp_path: Path, sandbox: Any
) -> None:
    src = tmp_path / "src"
    make_source(src, 2)
    state = f"file://{tmp_path / 'state'}"
    env = run_env(tmp_path, sandbox)
    del env["AIONVISION_API_KEY"]
    code, out, err = _finish(["run", str(src), "--state", state, "-p", "1", "--ignore-quota"], env)
    assert code == 2, err[-3000:]
    assert "index 0 failed: no API key: set AIONVISION_API_KEY" in out
    assert "failures by reason: not_processed 2" in out

    for name in ("empty-1.jpg", "empty-2.jpg"):  # one reason, two file names
        (src / name).write_bytes(b"")
    (src / "fake.png").write_bytes(b"not a png")
    code, out, err = _finish(["run", str(src), "--state", state], run_env(tmp_path, sandbox))
    assert code == 0, err[-3000:]
    # grouped by the worker's failure code (the reasons name each file), not one per file
    assert "failures by reason: rejected_in_batch 3" in out


def test_at_the_quota_edge_the_run_uploads_what_fits_and_reports_the_rest(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    """Issue 14 point 9: 10 uploads left this month, 42 files, ``--ignore-quota``. The run
    uploads 10 and records the other 32 as ``quota_exhausted`` (the shards complete: exit 0;
    ``--retry-failed`` retries them, the code not being final). Whether the API refuses a
    batch beyond the quota whole (tests/worker/test_pipeline.py) or file by file (the
    sandbox), the outcome is the same."""
    sandbox = sandbox_factory(quota=10)
    src = tmp_path / "src"
    make_source(src, 42)
    state = f"file://{tmp_path / 'state'}"
    env = run_env(tmp_path, sandbox)
    args = ["run", str(src), "--state", state, "-p", "2", "--run-id", "edge", "--ignore-quota"]
    code, out, err = _finish(args, env)
    assert code == 0, err[-3000:]
    assert "run edge: 42 planned objects: 32 failed, 10 uploaded" in out, out
    assert "failures by reason: quota_exhausted 32" in out, out
    assert len(sandbox.files()) == 10
