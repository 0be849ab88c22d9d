"""``aion-ingest sandbox`` as users run it: a real subprocess, and the docs' cURL examples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.sandbox.files import jpeg, png

ROOT = Path(__file__).resolve().parents[2]


def test_help_works():
    r = subprocess.run(
        [sys.executable, "-m", "ingest", "sandbox", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert r.returncode == 0
    assert "--fault-error-rate" in r.stdout and "--tier" in r.stdout


def test_bad_option_from_env_is_one_clear_line():
    env = {**os.environ, "SANDBOX_TIER": "GOLD"}
    r = subprocess.run(
        [sys.executable, "-m", "ingest", "sandbox"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert r.returncode == 2
    assert "unknown tier 'GOLD'" in r.stderr and "Traceback" not in r.stderr


def test_busy_port_is_a_config_error(port):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        r = subprocess.run(
            [sys.executable, "-m", "ingest", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture
def running() -> Iterator[tuple[str, str]]:
    """The real command on port 0; yields the printed base URL and key."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "sandbox", "--port", "0", "--api-keys", "aion_demo"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        key_line = proc.stdout.readline()
        assert first.startswith("Aionvision sandbox listening on http://127.0.0.1:")
        base = first.split()[-1]
        assert key_line.split()[-1] == "aion_demo"
        yield base, "aion_demo"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _curl(*args: str, cwd: Path = ROOT) -> dict:
    r = subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, check=True, cwd=cwd)
    return json.loads(r.stdout)


def test_the_documents_curl_examples(running, tmp_path):
    base, key = running
    for name, data in {
        "photo.jpg": jpeg(1, 1000),
        "photo1.jpg": jpeg(2, 1000),
        "photo2.jpg": jpeg(3, 1000),
        "photo3.jpg": png(seed=4),
    }.items():
        (tmp_path / name).write_bytes(data)
    # the examples use relative @paths: curl runs in the folder that holds the files
    one = _curl(
        "-X", "POST", f"{base}/user-files/upload/stream",
        "-H", f"Authorization: Bearer {key}",
        "-F", "file=@photo.jpg",
        "-F", "title=Site Inspection",
        "-F", "tags=inspection,site",
        cwd=tmp_path,
    )  # fmt: skip
    batch = _curl(
        "-X", "POST", f"{base}/user-files/upload/stream-batch",
        "-H", f"Authorization: Bearer {key}",
        "-F", "files=@photo1.jpg",
        "-F", "files=@photo2.jpg",
        "-F", "files=@photo3.jpg",
        cwd=tmp_path,
    )  # fmt: skip
    auth = f"Authorization: Bearer {key}"
    quota = _curl(f"{base}/uploads/quota-check?file_count=10", "-H", auth)
    session = _curl(batch["status_url"].replace("/api/v2", base, 1), "-H", auth)
    assert set(one) >= {
        "image_id", "object_key", "upload_method", "status", "processing_time_ms",
        "s3_upload_completed", "variants_queued", "description_queued", "skipped",
        "skipped_existing_image_id", "storage_target", "media_type", "document_type",
        "text_extraction_status",
    }  # fmt: skip
    assert one["status"] == "completed"
    assert set(batch) >= {
        "session_id", "total_files", "accepted_files", "rejected_files", "status",
        "immediate_results", "status_url", "websocket_channel", "rejections",
    }  # fmt: skip
    assert batch["accepted_files"] == 3
    assert set(batch["immediate_results"][0]) >= {
        "image_id",
        "filename",
        "status",
        "processing_time_ms",
        "skipped",
        "error",
        "media_type",
    }
    assert set(quota) == {
        "can_proceed",
        "requested",
        "available",
        "monthly_limit",
        "current_usage",
        "message",
    }
    assert set(session) >= {
        "session_id", "status", "total_files", "completed_files", "failed_files",
        "skipped_files", "pending_files", "progress_percentage", "created_at",
        "recent_completions", "recent_errors", "results_url", "websocket_channel",
    }  # fmt: skip


def test_admin_key_is_printed_required_and_kept_apart_from_api_keys():
    env = {**os.environ, "SANDBOX_ADMIN_KEY": "aion_admin_test"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        base = lines[0].split()[-1].removesuffix("/api/v2")
        assert "admin key: aion_admin_test (Bearer" in lines[4]
        stats = f"{base}/_sandbox/stats"
        assert httpx.get(stats).status_code == 401
        assert httpx.get(stats, headers={"Authorization": "Bearer aion_sandbox_key"}).is_error
        r = httpx.get(stats, headers={"Authorization": "Bearer aion_admin_test"})
        assert r.status_code == 200 and r.json()["requests"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    same = subprocess.run(
        [sys.executable, "-m", "ingest", "sandbox", "--api-keys", "k1,k2", "--admin-key", "k2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert same.returncode == 2
    assert "--admin-key is one of the --api-keys" in same.stderr
    assert "Traceback" not in same.stderr


def test_sandbox_without_its_extra_says_which_extra_and_exits_2() -> None:
    """The production image has no uvicorn: `aion-ingest sandbox` says what to install."""
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"  # import uvicorn -> ModuleNotFoundError
        "from ingest.cli import main\n"
        "sys.exit(main(['sandbox', '--port', '0']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "'sandbox' extra" in proc.stderr and "uvicorn" in proc.stderr
    assert "Traceback" not in proc.stderr
