"""`aion-ingest plan` as users run it: a real subprocess, real sources, stores and API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fixtures.s3 import S3Bucket


def _plan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "AIONVISION_"))}
    return subprocess.run(
        [sys.executable, "-m", "ingest", "plan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
        check=False,
    )


def _folder(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    for i in range(12):
        (src / "a" / f"img{i:02d}.jpg").write_bytes(b"x" * (1000 * (i + 1)))
    (src / "notes.exe").write_bytes(b"no")
    return src


def test_plan_prints_a_summary_then_the_existing_plan(tmp_path: Path) -> None:
    src, state = _folder(tmp_path), f"file://{tmp_path}/state"
    first = _plan(str(src), "--state", state, "--run-id", "r1", "--shards", "3", "--ignore-quota")
    assert first.returncode == 0, first.stderr
    assert "run r1: planned" in first.stdout
    assert "12 planned" in first.stdout and "unsupported_format 1" in first.stdout
    assert "shards    3" in first.stdout
    again = _plan(str(src), "--state", state, "--run-id", "r1", "--json", "--ignore-quota")
    assert again.returncode == 0, again.stderr
    shown = json.loads(again.stdout)
    assert (shown["status"], shown["shards"], shown["items"]) == ("existing", 3, 12)


def test_bad_usage_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = _plan(str(_folder(tmp_path)), "--state", str(tmp_path), "--run-id", "Bad_Id")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "run id 'Bad_Id' is not usable" in bad.stderr
    no_key = _plan(str(_folder(tmp_path / "b")), "--state", str(tmp_path))
    assert no_key.returncode == 2 and "set AIONVISION_API_KEY" in no_key.stderr


def test_quota_refusal_exits_3_with_the_apis_message(
    tmp_path: Path, sandbox_factory: Callable[..., Any]
) -> None:
    api = sandbox_factory(tier="FREE", quota=4)
    env = {"AIONVISION_API_KEY": api.api_key, "AIONVISION_BASE_URL": api.base_url}
    refused = _plan(str(_folder(tmp_path)), "--state", str(tmp_path / "st"), env=env)
    assert refused.returncode == 3, refused.stderr
    assert "quota-check refused 12 files" in refused.stderr
    assert not (tmp_path / "st" / "runs").exists()


def test_plan_from_s3_onto_s3(s3_bucket: S3Bucket) -> None:
    for i in range(25):
        s3_bucket.put(f"photos/{i:03d}.png", b"p" * (i + 1))
    s3_bucket.put("photos/readme.exe", b"x")
    env = {
        "INGEST_SOURCE__ENDPOINT_URL": s3_bucket.endpoint_url,
        "INGEST_SOURCE__REGION": "us-east-1",
    }
    out = _plan(
        s3_bucket.uri("photos/"),
        *("--state", s3_bucket.uri("state"), "--max-items-per-shard", "10"),
        *("--ignore-quota", "--json", "--run-id", "s3run"),
        env=env,
    )
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert (plan["items"], plan["filtered"]) == (25, {"unsupported_format": 1})
    assert plan["shards"] == 3 and max(plan["shard_items"]) <= 10
    keys = {
        o["Key"]
        for o in s3_bucket.server.client().list_objects_v2(Bucket=s3_bucket.name)["Contents"]
    }
    shard = f"state/runs/s3run/shards/{plan['attempt']}/00002.jsonl.gz"
    assert {"state/runs/s3run/run.json", shard} <= keys


def test_a_dry_run_with_a_limit_is_a_preflight_of_s3_the_key_and_the_quota(
    s3_bucket: S3Bucket, sandbox_factory: Callable[..., Any]
) -> None:
    """What the chart's `helm test` runs: the first N objects of a bigger bucket, the
    quota asked for them, nothing written to the state store, and a clear note."""
    for folder in ("a", "b"):
        for i in range(15):
            s3_bucket.put(f"photos/{folder}/{i:03d}.png", b"p" * (i + 1))
    api = sandbox_factory(tier="FREE", quota=4)
    env = {
        "INGEST_SOURCE__ENDPOINT_URL": s3_bucket.endpoint_url,
        "INGEST_SOURCE__REGION": "us-east-1",
        "INGEST_STATE": s3_bucket.uri("state"),
        "AIONVISION_API_KEY": api.api_key,
        "AIONVISION_BASE_URL": api.base_url,
    }
    source = s3_bucket.uri("photos/")
    ok = _plan(source, "--dry-run", "--limit", "3", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "listing cut short after 3 objects (--limit)" in ok.stdout
    assert "3 planned" in ok.stdout and "of 3 listed" in ok.stdout
    assert "can proceed: 3 requested" in ok.stdout
    shown = json.loads(_plan(source, "--dry-run", "--limit", "3", "--json", env=env).stdout)
    assert (shown["status"], shown["cut_short_at"], shown["listed"]) == ("dry_run", 3, 3)
    whole = json.loads(
        _plan(source, "--dry-run", "--limit", "30", "--json", "--ignore-quota", env=env).stdout
    )
    assert (whole["cut_short_at"], whole["listed"]) == (None, 30)
    refused = _plan(source, "--dry-run", "--limit", "5", env=env)  # the quota: 4 left
    assert refused.returncode == 3 and "quota-check refused 5 files" in refused.stderr
    listed = s3_bucket.server.client().list_objects_v2(Bucket=s3_bucket.name, Prefix="state")
    assert listed["KeyCount"] == 0


def test_a_limit_without_a_dry_run_is_a_usage_error(tmp_path: Path) -> None:
    src, state = _folder(tmp_path), f"file://{tmp_path}/state"
    bad = _plan(str(src), "--state", state, "--limit", "5", "--ignore-quota")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "add --dry-run" in bad.stderr
    zero = _plan(str(src), "--dry-run", "--limit", "0")
    assert zero.returncode == 2 and "must be at least 1" in zero.stderr
    assert not (tmp_path / "state").exists()
