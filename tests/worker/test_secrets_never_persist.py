"""A server that echoes the API key in its error text: the key lands nowhere a run writes
(issue 13, point 4): not the results parts, not report.csv/report.json, not stderr."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ingest.demo.samples import make_jpeg
from tests.run.helpers import run_env
from tests.worker.harness import written_text

SECRET = "aion_live_secret_key_0123456789"


async def _echoing_api() -> tuple[web.AppRunner, str]:
    """The API's quota check, and uploads refused with a message quoting the headers."""

    async def quota(request: web.Request) -> web.Response:
        return web.json_response({"can_proceed": True})

    async def upload(request: web.Request) -> web.Response:
        await request.read()
        said = f"malformed request; headers: Authorization: {request.headers['Authorization']}"
        return web.json_response({"detail": said}, status=400)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/api/v2/uploads/quota-check", quota)
    app.router.add_post("/api/v2/user-files/upload/stream", upload)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/api/v2"


@pytest.mark.timeout(180)
async def test_an_echoed_api_key_is_redacted_from_everything_a_run_writes(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(4)
    for i in range(3):
        (src / f"p{i}.jpg").write_bytes(make_jpeg(rng, 2000 + i))
    runner, base_url = await _echoing_api()
    try:
        fake = type("S", (), {"base_url": base_url, "api_key": SECRET})()
        env: dict[str, Any] = run_env(
            tmp_path, fake, INGEST_WORKER__SMALL_FILE_MAX="0", INGEST_LOG__LEVEL="DEBUG"
        )
        state = tmp_path / "state"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ingest", "run", str(src), "--state", f"file://{state}",
            "--run-id", "echo", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=150)
    finally:
        await runner.cleanup()
    console = out.decode() + err.decode()
    rows = (state / "runs" / "echo" / "report.csv").read_text()
    assert rows.count("failed") >= 3, rows  # the refusals reached the report...
    assert "Authorization: Bearer ***" in rows  # ...with the echo, redacted
    for path, data in written_text([state, tmp_path / "xdg"]):
        assert SECRET.encode() not in data, f"the API key was written to {path}"
    assert SECRET not in console, console[-3000:]
    assert json.loads((state / "runs" / "echo" / "report.json").read_text())
