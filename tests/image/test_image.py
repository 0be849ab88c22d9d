"""The built image: a shard planned and uploaded from inside it, and what it holds (and not).

The runtime image plans a small bucket on moto into a state store on moto, uploads the shard
to the sandbox and writes the report, all through its own entrypoint as uid 10001; the
sandbox then holds each file exactly once, byte for byte. The image holds no compiler, no pip
cache, no pip in the venv, no sources or tests, and its venv is not writable by its user; the
sandbox target adds the sandbox and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
from typing import Any

import httpx
import pytest

from ingest.demo.samples import make_jpeg, make_png
from tests.fixtures.s3 import S3Bucket, S3Server
from tests.image.conftest import Image, _say

pytestmark = pytest.mark.timeout(2400)

# An upper bound that catches a build that drags in a toolchain or a cache; the measured size
# is printed (make image-test) and stated in the README.
MAX_UNPACKED_MIB = 500


def _env(s3: S3Server, sandbox: Any) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "INGEST_SOURCE__ENDPOINT_URL": s3.endpoint_url,
        "AIONVISION_BASE_URL": sandbox.base_url,
        "AIONVISION_API_KEY": sandbox.api_key,
        "INGEST_API__TIER": "ENTERPRISE",
        "INGEST_LOG__FORMAT": "json",
    }


def _ok(proc: Any, what: str) -> str:
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return str(proc.stdout)


def test_runtime_image_plans_and_uploads_a_shard(
    runtime: Image, s3_bucket: S3Bucket, sandbox: Any
) -> None:
    rng = random.Random(12)
    sent: dict[str, bytes] = {}
    for i in range(12):
        key, body = (
            (f"site {i % 2}/img-{i:02d}.jpg", make_jpeg(rng, 4000 + 100 * i))
            if i % 2
            else (f"site {i % 2}/plan-{i:02d}.png", make_png(rng, 8, 8 + i))
        )
        s3_bucket.put(key, body)
        sent[key.rsplit("/", 1)[1]] = body
    s3_bucket.put("notes/clip.mp4", b"\x00\x00\x00\x18ftypmp42")  # filtered out: unsupported
    state_bucket = f"{s3_bucket.name}-state"
    s3_bucket.server.client().create_bucket(Bucket=state_bucket)
    state = f"s3://{state_bucket}/ingest"
    env = _env(s3_bucket.server, sandbox)

    version = _ok(runtime.run("--version", env=env), "aion-ingest --version")
    assert version.strip().endswith("0.1.0"), version
    _ok(
        runtime.run(
            "plan", s3_bucket.uri(), "--state", state, "--run-id", "smoke", "--shards", "1", env=env
        ),
        "aion-ingest plan",
    )
    _ok(
        runtime.run("work", "--run-id", "smoke", "--state", state, "--index", "0", env=env),
        "aion-ingest work",
    )
    _ok(runtime.run("report", "smoke", "--state", state, env=env), "aion-ingest report")

    files = sandbox.files()
    got = {f["filename"]: f["sha256"] for f in files}
    assert len(files) == len(sent), sorted(f["filename"] for f in files)
    assert got == {name: hashlib.sha256(body).hexdigest() for name, body in sent.items()}
    report = json.loads(
        s3_bucket.server.client()
        .get_object(Bucket=state_bucket, Key="ingest/runs/smoke/report.json")["Body"]
        .read()
    )
    assert json.dumps(report).count(sandbox.api_key) == 0  # no secret in the report
    _say(f"runtime image uploaded {len(files)} files from inside, as uid {runtime.config['User']}")


def test_runtime_image_config(runtime: Image) -> None:
    config = runtime.config
    assert config["Entrypoint"] == ["aion-ingest"]
    assert config["User"] == "10001:10001"
    assert config["Labels"]["org.opencontainers.image.title"] == "aion-ingest"
    assert config["Labels"]["org.opencontainers.image.version"] == "0.1.0"
    assert any(v.startswith("PATH=/opt/aion-ingest/bin:") for v in config["Env"])


COMPILERS = (
    "gcc",
    "cc",
    "c++",
    "g++",
    "clang",
    "tcc",
    "x86_64-linux-gnu-gcc",
    "aarch64-linux-gnu-gcc",
)


def _holds_no_build_leftovers(image: Image) -> None:
    root = image.rootfs
    bins = [root / d for d in ("usr/bin", "usr/local/bin", "bin", "opt/aion-ingest/bin")]
    found = [str(d / c) for d in bins for c in COMPILERS if (d / c).exists()]
    found += [str(p) for p in bins[0].glob("*-gcc-[0-9]*")]
    assert not found, f"compilers in the image: {found}"
    caches = [str(p) for p in root.glob("**/.cache/pip")] + [
        str(root / p)
        for p in ("wheels", "project", "requirements", ".wheelhouse")
        if (root / p).exists()
    ]
    assert not caches, f"pip cache or build inputs in the image: {caches}"
    venv = root / "opt" / "aion-ingest"
    site = next(venv.glob("lib/python3.*/site-packages"))
    assert not list(site.glob("pip")), "pip in the venv"
    assert (site / "ingest" / "cli.py").is_file()  # the installed package, nothing else of ours
    ours = ("tests", "bench", "charts", "scripts", "src", "app", "pyproject.toml")
    places = [root, root / "tmp", root / "opt", root / "root", root / "home", venv, site]
    leaked = [str(place / name) for place in places for name in ours if (place / name).exists()]
    leaked += [str(p) for p in site.glob("ingest/**/test_*.py")]
    assert not leaked, f"project sources or tests in the image: {leaked}"
    writable = [str(p) for p in (venv, site, site / "ingest") if p.stat().st_uid != 0]
    assert not writable, f"the venv should belong to root, not the image's user: {writable}"


def test_runtime_image_holds_no_compiler_cache_or_sources(runtime: Image) -> None:
    _holds_no_build_leftovers(runtime)
    site = next((runtime.rootfs / "opt" / "aion-ingest").glob("lib/python3.*/site-packages"))
    assert not (site / "starlette").exists() and not (site / "uvicorn").exists(), (
        "the production image carries the sandbox extra"
    )
    mib = runtime.size_bytes / 2**20
    _say(f"runtime image: {mib:.0f} MiB unpacked")
    assert mib < MAX_UNPACKED_MIB


def test_sandbox_image_serves_the_sandbox(sandbox_image: Image, runtime: Image) -> None:
    _holds_no_build_leftovers(sandbox_image)
    proc = subprocess.Popen(
        sandbox_image.command(
            "aion-ingest", "sandbox", "--host", "127.0.0.1", "--port", "0", env={}
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # buildah and the server inside: one group to stop
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until the server has bound its port
        url = re.search(r"listening on (http://\S+/api/v2)", first)
        assert url is not None, first + proc.stdout.read()
        key = re.search(r"API key: (\S+)", proc.stdout.readline())
        assert key is not None
        r = httpx.get(
            f"{url.group(1)}/user-files",
            headers={"Authorization": f"Bearer {key.group(1)}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert httpx.get(f"{url.group(1)}/user-files", timeout=30).status_code == 401
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    extra = sandbox_image.size_bytes - runtime.size_bytes
    _say(
        f"sandbox image: {sandbox_image.size_bytes / 2**20:.0f} MiB unpacked "
        f"({extra / 2**20:+.1f} MiB over runtime)"
    )
    assert 0 < extra < 40 * 2**20


def test_runtime_image_lacks_the_sandbox_extra(runtime: Image) -> None:
    argv = runtime.command("python", "-c", "import starlette", env={})
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1 and "No module named 'starlette'" in proc.stderr, proc.stderr
